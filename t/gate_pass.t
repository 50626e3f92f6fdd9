# The protected path's per-connection pass (issue 18): a request on a
# kept-alive connection that sends the same Cookie header as the last one
# that passed is let through on that pass alone. These check that it never
# lets through what the full checks would refuse: a changed or forged
# cookie, another user's session, a stricter location, the idle and the
# absolute timeout, a client that ignores the renewed cookie, a logout, a
# long Cookie header, a change at any byte of the cookie (AVX2 and SSE2),
# a new connection on a socket another used, and that
# the app sees the same identity either way (HTTP/1.1 and HTTP/2).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::SSL;
use Time::HiRes qw(sleep time);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
# idle 3 s (a renewed cookie every second), absolute 9 s
$t->write_conf(<<'EOF', workers => 1);
    %%CERTGATE%%
    certgate_sync_interval 500ms;
    certgate_session_timeout 3s 9s;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location / {
            return 200 "user=$http_x_user org=$http_x_org role=$http_x_role serial=$http_x_serial days=$http_x_days\n";
        }
    }
    server {
        # the suites' TLS lines, with HTTP/2 beside HTTP/1.1
        listen 127.0.0.1:%%HTTPS_PORT%% ssl http2;
        ssl_certificate %%DIR%%/server.crt;
        ssl_certificate_key %%DIR%%/server.key;
        ssl_client_certificate %%DIR%%/ca.crt;
        ssl_verify_client optional_no_ca;
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            proxy_set_header X-User $certgate_user;
            proxy_set_header X-Org $certgate_org;
            proxy_set_header X-Role $certgate_role;
            proxy_set_header X-Serial $certgate_cert_serial;
            proxy_set_header X-Days $certgate_cert_days_left;
            proxy_pass http://127.0.0.1:%%HTTP_PORT%%;
        }
        location /admin/ {
            certgate_require role=master;
            proxy_set_header X-User $certgate_user;
            proxy_pass http://127.0.0.1:%%HTTP_PORT%%;
        }
    }
EOF
$t->start_nginx;
my $pw = 'Passw0rd!';
$t->add_org('ORG001');
$t->add_user('ORG001', 'master01', $pw, master => 1);
$t->add_user('ORG001', $_, $pw) for qw(general1 general2);
my %cert;
$cert{$_} = $t->issue_certificate($_, $pw) for qw(master01 general1 general2);
ok($cert{$_}{ok}, "$_ has a certificate") for sort keys %cert;

sub session_of {
    my ($user) = @_;
    my $jar = $t->jar;
    my $r = $t->login($user, $pw, cert => $cert{$user}{name}, jar => $jar);
    die "login $user: $r->{status}" unless $r->{json}{ok};
    my ($cookie) = Certgate::Test::read_file($jar) =~ /__Host-certgate_session\t(\S+)/;
    return wantarray ? ($cookie, $jar) : $cookie;
}

# One kept-alive TLS connection with the certificate of $user; returns a
# function that sends GET $path with the given Cookie header lines (a list)
# and returns { status, body, set_cookie }.
sub connection {
    my ($user) = @_;
    my $sock = IO::Socket::SSL->new(
        PeerAddr => '127.0.0.1', PeerPort => $t->port('https'),
        SSL_ca_file => $t->dir . '/ca.crt', SSL_cert_file => $t->dir . "/$cert{$user}{name}.crt",
        SSL_key_file => $t->dir . "/$cert{$user}{name}.key", SSL_verifycn_name => 'localhost',
    ) or die "connect: $SSL_ERROR";
    return sub {
        my ($path, @cookies) = @_;
        local $SIG{PIPE} = 'IGNORE';
        my $req = "GET $path HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n";
        $req .= "Cookie: $_\r\n" for @cookies;
        print $sock "$req\r\n";
        my $head = '';
        while (my $line = <$sock>) { $head .= $line; last if $line eq "\r\n" }
        my ($len) = $head =~ /Content-Length: (\d+)/i;
        my $body = '';
        read($sock, $body, $len) if $len;
        my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
        my ($set) = $head =~ /Set-Cookie: __Host-certgate_session=([^;\r\n]+)/i;
        return { status => $status // 0, body => $body, set_cookie => $set };
    };
}

my $S = '__Host-certgate_session';

subtest 'the same identity on the first request and on the pass' => sub {
    my $cookie = session_of('general1');
    my $ask = connection('general1');
    my @bodies = map { $ask->('/app/x', "$S=$cookie") } 1 .. 4;
    is($_->{status}, 200, 'passes') for @bodies;
    like($bodies[0]{body}, qr/^user=general1 org=ORG001 role=general serial=$cert{general1}{serial} days=\d+$/m,
        'the app learns who it is');
    is($_->{body}, $bodies[0]{body}, 'the same on a later request of the connection') for @bodies[1 .. 3];
};

subtest 'a changed or forged cookie on a connection that passed' => sub {
    my $cookie = session_of('general1');
    my $ask = connection('general1');
    is($ask->('/app/x', "$S=$cookie")->{status}, 200, 'passes');
    (my $forged = $cookie) =~ s/^(.{10})(.)/$1 . ($2 eq 'A' ? 'B' : 'A')/e;
    my $r = $ask->('/app/x', "$S=$forged");
    is($r->{status}, 401, 'a forged cookie is refused on the same connection');
    like($r->{body}, qr/login_required/, 'login_required');
    is($ask->('/app/x', 'other=1')->{status}, 401, 'no session cookie: refused');
    is($ask->('/app/x', "$S=$cookie")->{status}, 200, 'the real cookie passes again');
    # the same session cookie among other cookies, and split over two headers
    is($ask->('/app/x', "a=1; $S=$cookie; b=2")->{status}, 200, 'with other cookies around it');
    is($ask->('/app/x', 'a=1', "$S=$cookie")->{status}, 200, 'in a second Cookie header');
    is($ask->('/app/x', 'a=1', "$S=$forged")->{status}, 401, 'forged, in a second Cookie header');
};

subtest "another user's session on a connection that passed" => sub {
    my $mine = session_of('general1');
    my $theirs = session_of('general2');
    my $ask = connection('general1');
    is($ask->('/app/x', "$S=$mine")->{status}, 200, 'passes with its own session');
    my $r = $ask->('/app/x', "$S=$theirs");
    is($r->{status}, 401, "general2's session on general1's certificate is refused");
    like($r->{body}, qr/certificate_mismatch/, 'certificate_mismatch');
};

subtest 'a stricter location on a connection that passed' => sub {
    my $cookie = session_of('general1');
    my $ask = connection('general1');
    is($ask->('/app/x', "$S=$cookie")->{status}, 200, '/app/ passes');
    is($ask->('/admin/x', "$S=$cookie")->{status}, 403, 'role=master refuses a general user on the same connection');
    is($ask->('/app/x', "$S=$cookie")->{status}, 200, 'and /app/ passes again');
    my $m = session_of('master01');
    my $mask = connection('master01');
    is($mask->('/app/x', "$S=$m")->{status}, 200, 'a master user passes /app/');
    is($mask->('/admin/x', "$S=$m")->{status}, 200, 'and /admin/ on the same connection');
};

subtest 'a logout elsewhere reaches a connection living on its pass' => sub {
    my ($cookie, $jar) = session_of('general1');
    my $ask = connection('general1');
    is($ask->('/app/x', "$S=$cookie")->{status}, 200, 'passes') for 1 .. 3;
    ok($t->submit('/certgate/logout', {}, cert => $cert{general1}{name}, jar => $jar)->{json}{ok},
        'logged out on another connection');
    my $start = time;
    my $r;
    while (time - $start < 5) {
        $r = $ask->('/app/x', "$S=$cookie");
        last if $r->{status} != 200;
        sleep 0.1;
    }
    is($r->{status}, 401, 'the kept-alive connection is refused after the logout');
    cmp_ok(time - $start, '<', 3, 'within 3 s');
};

subtest 'a client that keeps the old cookie is logged out at the idle timeout' => sub {
    my $cookie = session_of('general1');
    my $ask = connection('general1');
    my ($last, $renewed, $start) = (undef, 0, time);
    while (time - $start < 6) {
        $last = $ask->('/app/x', "$S=$cookie");
        $renewed++ if $last->{set_cookie};
        last if $last->{status} != 200;
        sleep 0.2;
    }
    is($last->{status}, 401, 'refused though it kept asking');
    cmp_ok(time - $start, '<', 4.5, sprintf('at the idle timeout of its cookie (%.1f s)', time - $start));
    ok($renewed, "it was sent renewed cookies ($renewed times)");
};

subtest 'a client that takes the renewed cookie lives to the absolute timeout' => sub {
    my $cookie = session_of('general1');
    my $ask = connection('general1');
    my ($last, $start, $renewed) = (undef, time, 0);
    while (time - $start < 12) {
        $last = $ask->('/app/x', "$S=$cookie");
        last if $last->{status} != 200;
        if ($last->{set_cookie}) { $cookie = $last->{set_cookie}; $renewed++ }
        sleep 0.25;
    }
    my $lived = time - $start;
    is($last->{status}, 401, 'refused in the end');
    cmp_ok($lived, '>', 6, sprintf('past the idle timeout (%.1f s, renewed %d times)', $lived, $renewed));
    cmp_ok($lived, '<', 10.5, 'at the absolute timeout');
};

subtest 'an idle kept-alive connection is refused after the idle timeout' => sub {
    my $cookie = session_of('general1');
    my $ask = connection('general1');
    is($ask->('/app/x', "$S=$cookie")->{status}, 200, 'passes') for 1 .. 3;
    sleep 4;
    my $r = $ask->('/app/x', "$S=$cookie");
    is($r->{status}, 401, 'refused after 4 s without a request');
    like($r->{body}, qr/login_required/, 'login_required');
};

subtest 'a long Cookie header on a connection that passed' => sub {
    my $cookie = session_of('general1');
    my $ask = connection('general1');
    (my $forged = $cookie) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;
    # The pass keeps up to 256 bytes of the header in place and longer ones
    # apart: the same session cookie after padding of either length, and a
    # header that differs from the one that passed only at its last byte.
    for my $len (256, 257, 600) {
        my $pad = 'pad=' . ('x' x ($len - length("pad=; $S=$cookie")));
        my $header = "$pad; $S=$cookie";
        is(length $header, $len, "a header of $len bytes");
        my @r = map { $ask->('/app/x', $header) } 1 .. 3;
        is($_->{status}, 200, "$len bytes: passes") for @r;
        like($r[2]{body}, qr/^user=general1 /m, "$len bytes: the app learns who it is");
        my $r = $ask->('/app/x', "$pad; $S=$forged");
        is($r->{status}, 401, "$len bytes: the same header with its last byte changed is refused");
        like($r->{body}, qr/login_required/, 'login_required');
        is($ask->('/app/x', $header)->{status}, 200, "$len bytes: the real one passes again");
    }
};

# The pass compares the header 32 bytes at a time with AVX2 (16 with SSE2)
# and an overlapping last block: a change at every position of the session
# cookie (each block, each boundary, the overlap) sends the request to the
# full check, which refuses it.
sub every_byte_changed {
    my $cookie = session_of('general1');
    my $ask = connection('general1');
    my $header = "$S=$cookie";
    is($ask->('/app/x', $header)->{status}, 200, 'passes');
    my ($refused, $passed_again) = (0, 0);
    for my $at (length("$S=") .. length($header) - 1) {
        (my $changed = $header) =~ s/^(.{$at})./$1~/s;
        $refused++ if $ask->('/app/x', $changed)->{status} == 401;
        $passed_again++ if $ask->('/app/x', $header)->{status} == 200;
    }
    my $n = length($header) - length("$S=");
    cmp_ok($n, '>=', 64, "the session cookie spans several blocks ($n bytes)");
    is($refused, $n, 'a change at any byte of the cookie is refused');
    is($passed_again, $n, 'and the real one passes after each');
}

subtest 'a Cookie header that differs from the one that passed at any one byte' => \&every_byte_changed;

subtest 'a socket used again by another certificate' => sub {
    # The worker finds a connection's certificate check again by its socket:
    # a new connection on the same socket (the kernel hands out the lowest
    # free descriptor, so a connection closed and another opened get the
    # same one) must never get the earlier connection's.
    my $one = session_of('general1');
    my $two = session_of('general2');
    for my $round (1 .. 3) {
        my $ask = connection('general1');
        is($ask->('/app/x', "$S=$one")->{status}, 200, "round $round: general1 passes") for 1 .. 2;
        undef $ask;    # closes the connection
        sleep 0.2;     # and the worker its socket
        my $other = connection('general2');
        my $r = $other->('/app/x', "$S=$one");
        is($r->{status}, 401, "round $round: general1's cookie on general2's new connection is refused");
        like($r->{body}, qr/certificate_mismatch/, 'certificate_mismatch');
        $r = $other->('/app/x', "$S=$two");
        is($r->{status}, 200, "round $round: general2's own cookie passes");
        like($r->{body}, qr/^user=general2 .*serial=$cert{general2}{serial} /m, 'as general2, with its certificate');
        undef $other;
        sleep 0.2;
    }
};

subtest 'HTTP/2: the same answers on one connection' => sub {
    plan skip_all => 'curl without HTTP/2' unless `curl -V` =~ /HTTP2/;
    my $cookie = session_of('general1');
    my $theirs = session_of('general2');
    my $url = "https://localhost:" . $t->port('https');
    # one curl, one connection, several requests in turn
    my ($rc, $out) = Certgate::Test::run('curl', '-s', '--http2', '--resolve', 'localhost:' . $t->port('https') . ':127.0.0.1',
        '--cacert', $t->dir . '/ca.crt', '--cert', $t->dir . "/$cert{general1}{name}.crt",
        '--key', $t->dir . "/$cert{general1}{name}.key", '-H', 'Accept: application/json',
        '-w', '%{http_version} %{http_code} %{num_connects}\n',
        '-H', "Cookie: $S=$cookie", "$url/app/1", "$url/app/2", "$url/admin/3",
        '--next', '-s', '--http2', '--cacert', $t->dir . '/ca.crt', '--cert', $t->dir . "/$cert{general1}{name}.crt",
        '--key', $t->dir . "/$cert{general1}{name}.key", '-H', 'Accept: application/json',
        '-w', '%{http_version} %{http_code} %{num_connects}\n', '-H', "Cookie: $S=$theirs", "$url/app/4");
    is($rc, 0, 'curl ran');
    my @codes = $out =~ /^2 (\d+) (\d+)$/mg;
    is_deeply([@codes[0, 2, 4, 6]], [200, 200, 403, 401], 'pass, pass, stricter location refused, other session refused')
        or diag $out;
    is_deeply([@codes[3, 5, 7]], [0, 0, 0], 'all on the first connection') or diag $out;
};

subtest 'the same with the SSE2 comparison (test hook CERTGATE_TEST_NO_AVX2)' => sub {
    $t->stop_nginx;
    {
        local $ENV{CERTGATE_TEST_NO_AVX2} = 1;
        $t->start_nginx;
    }
    like($t->error_log, qr/test hook: the pass compares with SSE2/, 'nginx compares with SSE2');
    every_byte_changed();
};

done_testing;
