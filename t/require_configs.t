# certgate_require inside the configs sites write around a protected
# location: try_files and error_page to a named location, satisfy any with
# allow, role=master before a named location, index, rewrite ... last,
# return, mirror, and subrequests (SSI, auth_request) into it. Each is asked
# without a certificate, with a foreign certificate, with a forged session
# cookie, and with a general user's real session where a master is required,
# as a browser and as a script: nothing reaches the upstream. A logged-in
# user reaches it through every one of them (so the test can tell).
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $d = $t->dir;
mkdir "$d/$_" for qw(www www/tf www/ix www/ssi www/ep);
Certgate::Test::write_file("$d/www/ix/app", "index target\n");
Certgate::Test::write_file("$d/www/ssi/page.html", "page:<!--# include virtual=\"/p/from-ssi\" -->:end\n");

# The upstream is a server of the same nginx that writes its own access log:
# a line there is a request that got through.
$t->write_conf(<<'EOF');
    %%CERTGATE%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        access_log %%DIR%%/logs/upstream.log;
        location / { return 200 "UPSTREAM $uri\n"; }
    }
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }

        location /p/ { certgate_require; proxy_pass http://127.0.0.1:%%HTTP_PORT%%; }

        location /tf/ { certgate_require; root %%DIR%%/www; try_files $uri @app; }

        location /ep/ {
            certgate_require;
            root %%DIR%%/www;
            error_page 401 403 404 = @app;
        }

        location /sa/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            certgate_require;
            proxy_pass http://127.0.0.1:%%HTTP_PORT%%;
        }

        location /m/ { certgate_require role=master; root %%DIR%%/www; try_files $uri @app; }

        location /ix/ { certgate_require; root %%DIR%%/www; index app; }
        location = /ix/app { proxy_pass http://127.0.0.1:%%HTTP_PORT%%; }

        location /rw/ { certgate_require; rewrite ^/rw/(.*)$ /open/$1 last; }
        location /open/ { proxy_pass http://127.0.0.1:%%HTTP_PORT%%; }

        location /ret/ { certgate_require; return 200 "UPSTREAM returned\n"; }

        location /mi/ { certgate_require; mirror /mirrored; proxy_pass http://127.0.0.1:%%HTTP_PORT%%; }
        location = /mirrored { internal; proxy_pass http://127.0.0.1:%%HTTP_PORT%%/mirror-copy; }

        location /ssi/ { ssi on; root %%DIR%%/www; }

        location /ar/ { auth_request /p/check; proxy_pass http://127.0.0.1:%%HTTP_PORT%%; }

        location @app { proxy_pass http://127.0.0.1:%%HTTP_PORT%%; }
    }
EOF
$t->start_nginx;

$t->add_org('ORG001');
$t->add_user('ORG001', 'master01', 'Passw0rd!', master => 1);
$t->add_user('ORG001', 'general1', 'Passw0rd!');
for my $u (qw(master01 general1)) {
    $t->client_cert($u, org => 'Demo Org');
    $t->certgatectl('cert', 'import', "$d/$u.crt", '--user', $u);
}
$t->client_cert('mallory1', ca => 'other');
my %jar = (master01 => $t->jar, general1 => $t->jar);
for my $u (qw(master01 general1)) {
    ok($t->login($u, 'Passw0rd!', cert => $u, jar => $jar{$u})->{json}{ok}, "$u logs in");
}
my $forged = "$d/forged-jar.txt";
Certgate::Test::write_file($forged,
    "127.0.0.1\tFALSE\t/\tTRUE\t0\t__Host-certgate_session\tAAAAforgedAAAA.c2Vzc2lvbg\n");

sub upstream_lines {
    my $log = Certgate::Test::read_file("$d/logs/upstream.log") // '';
    return scalar(() = $log =~ /\n/g);
}

my @locations = (
    ['plain proxy_pass',             '/p/x'],
    ['try_files to a named location', '/tf/x'],
    ['error_page to a named location', '/ep/x'],
    ['satisfy any with allow',        '/sa/x'],
    ['role=master before a named location', '/m/x', 'master'],
    ['index',                         '/ix/'],
    ['rewrite ... last',              '/rw/x'],
    ['return',                        '/ret/x'],
    ['mirror',                        '/mi/x'],
    ['SSI include of a protected location', '/ssi/page.html', undef, 'subrequest'],
    ['auth_request of a protected location', '/ar/x', undef, 'subrequest'],
);

my @clients = (
    ['no certificate',        {}],
    ['a foreign certificate', { cert => 'mallory1' }],
    ['a forged session cookie with our certificate', { cert => 'general1', cookies => $forged }],
    ['our certificate, no session', { cert => 'master01' }],
);

for my $loc (@locations) {
    my ($what, $path, $needs, $kind) = @$loc;
    subtest "$what: nothing gets through" => sub {
        my @cl = @clients;
        push @cl, ['a general user\'s live session', { cert => 'general1', cookies => $jar{general1} }]
            if ($needs // '') eq 'master';
        for my $c (@cl) {
            my ($who, $o) = @$c;
            for my $json (0, 1) {
                my $before = upstream_lines();
                my $r = $t->get($path, %$o, json => $json);
                my $as = ($json ? 'JSON' : 'browser') . ", $who";
                if (($kind // '') eq 'subrequest') {
                    unlike($r->{body}, qr/UPSTREAM/, "$as: no upstream answer in the page");
                } else {
                    like($r->{status}, qr/^(302|401|403)$/, "$as: refused ($r->{status})");
                    unlike($r->{body}, qr/UPSTREAM/, "$as: no upstream answer");
                    if ($json) {
                        like($r->{body}, qr/"ok":false,"error":"\w+"/, "$as: certgate's JSON refusal");
                    }
                }
                # the mirror's copy is sent after the answer: give it a moment
                select(undef, undef, undef, 0.05) if $path =~ m{^/mi/};
                is(upstream_lines(), $before, "$as: the upstream saw nothing");
            }
        }
        my $user = ($needs // '') eq 'master' ? 'master01' : 'general1';
        my $before = upstream_lines();
        my $r = $t->get($path, cert => $user, cookies => $jar{$user});
        is($r->{status}, 200, "a logged-in $user gets through");
        like($r->{body}, qr/UPSTREAM/, 'and gets the upstream answer') or diag($r->{body});
        cmp_ok(upstream_lines(), '>', $before, 'the upstream saw it') unless $path =~ m{^/ret/};
    };
}

subtest 'the identity reaches a named location' => sub {
    $t->stop_nginx;
    $t->write_conf(<<'EOF');
    %%CERTGATE%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location / { return 200 "UPSTREAM user=$http_x_user role=$http_x_role\n"; }
    }
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location /tf/ { certgate_require; try_files $uri @app; }
        location /ep/ { certgate_require; error_page 404 = @app; }
        location @app {
            proxy_set_header X-User $certgate_user;
            proxy_set_header X-Role $certgate_role;
            proxy_pass http://127.0.0.1:%%HTTP_PORT%%;
        }
    }
EOF
    $t->start_nginx;
    for my $path ('/tf/x', '/ep/x') {
        my $r = $t->get($path, cert => 'master01', cookies => $jar{master01});
        is($r->{status}, 200, "$path: 200");
        like($r->{body}, qr/user=master01 role=master/, "$path: \$certgate_user and \$certgate_role in \@app");
    }
};

$t->done;
done_testing;
