# R4/R5 under the documented TLS setup (ssl_verify_client optional with
# certgate_expired_certificates pass): a browser that presents an expired or
# revoked certificate of ours reaches the portal, is told why and how to get
# a new one, and can go through ④; certgate_require still refuses it. Without
# the directive nginx answers its own 400 page on every URL.
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
mkdir "$d/app";
Certgate::Test::write_file("$d/app/index.html", "business app\n");

sub conf {
    my ($directive) = @_;
    my $conf = <<'EOF';
    %%CERTGATE%%
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        ssl_certificate %%DIR%%/server.crt;
        ssl_certificate_key %%DIR%%/server.key;
        ssl_client_certificate %%DIR%%/ca.crt;
        ssl_verify_client optional;
        DIRECTIVE
        location /certgate/ { certgate_portal; }
        location /app/ { certgate_require; root %%DIR%%; }
    }
EOF
    $conf =~ s/DIRECTIVE/$directive/;
    return $conf;
}

$t->add_org('ORG001');
$t->add_user('ORG001', 'alice01', 'Passw0rd!');
$t->add_user('ORG001', 'bob0001', 'Passw0rd!');
$t->client_cert_until('alice01', time - 86400, name => 'alice-expired', store_user => 'alice01');
$t->client_cert('bob0001', name => 'bob-revoked');
$t->certgatectl('cert', 'import', "$d/bob-revoked.crt", '--user', 'bob0001');
my $bob_serial = `openssl x509 -noout -serial -in $d/bob-revoked.crt`;
$bob_serial =~ s/^serial=//;
chomp $bob_serial;

subtest 'without the directive: nginx refuses the expired certificate itself' => sub {
    $t->write_conf(conf(''));
    $t->start_nginx;
    my $r = $t->get('/certgate/', cert => 'alice-expired');
    is($r->{status}, 400, 'nginx: 400');
    like($r->{body}, qr/The SSL certificate error/, "nginx's own page");
    $t->stop_nginx;
};

$t->write_conf(conf('certgate_expired_certificates pass;'));
$t->start_nginx;

subtest 'an expired certificate reaches the login screen, which says why' => sub {
    my $r = $t->get('/certgate/', cert => 'alice-expired');
    is($r->{status}, 200, 'the login screen');
    like($r->{body}, qr/電子証明書の有効期限が切れています/, 'says the certificate expired');
    like($r->{body}, qr/有効期限：\d{4}年\d+月\d+日/, 'and when');
    like($r->{body}, qr{href="/certgate/issue"}, 'with the way to reissue');
    $r = $t->get('/certgate/?lang=en', cert => 'alice-expired');
    like($r->{body}, qr/This certificate has expired.*valid until \d{4}-\d\d-\d\d/s, 'in English too');
};

subtest 'the expired certificate cannot log in, but reaches ④' => sub {
    my $r = $t->login('alice01', 'Passw0rd!', cert => 'alice-expired');
    is($r->{json}{error}, 'certificate_expired', 'login: certificate_expired');
    $r = $t->get('/certgate/issue', cert => 'alice-expired');
    is($r->{status}, 200, '④ answers');
    like($r->{body}, qr/ユーザー認証/, 'the user authentication screen');
    $r = $t->submit('/certgate/issue', { user_id => 'alice01', password => 'Passw0rd!' }, cert => 'alice-expired');
    ok($r->{json}{ok}, '④ passes with the expired certificate presented') or diag($r->{body});
};

subtest 'certgate_require refuses the expired certificate' => sub {
    my $r = $t->get('/app/', cert => 'alice-expired', json => 1);
    is($r->{status}, 401, 'JSON: 401');
    like($r->{body}, qr/"error":"certificate_expired"/, 'certificate_expired');
    $r = $t->get('/app/', cert => 'alice-expired');
    is($r->{status}, 302, 'browser: 302');
    like($r->{headers}{location}, qr{/certgate/\?error=certificate_expired$}, 'to the login screen with the reason');
};

subtest 'a revoked certificate reaches the portal and is told so' => sub {
    my $jar = $t->jar;
    ok($t->login('bob0001', 'Passw0rd!', cert => 'bob-revoked', jar => $jar)->{json}{ok}, 'bob logs in');
    is($t->get('/app/', cert => 'bob-revoked', cookies => $jar)->{status}, 200, 'and reaches the app');
    my ($rc, $out) = $t->certgatectl('cert', 'revoke', $bob_serial, '--reason', 'keyCompromise');
    is($rc, 0, 'certgatectl cert revoke') or diag($out);
    my $r;
    for (1 .. 60) {
        $r = $t->get('/app/', cert => 'bob-revoked', cookies => $jar, json => 1);
        last if $r->{status} != 200;
        select(undef, undef, undef, 0.1);
    }
    like($r->{body}, qr/"error":"certificate_revoked"/, 'certgate_require: certificate_revoked');
    $r = $t->get('/certgate/', cert => 'bob-revoked');
    is($r->{status}, 200, 'the login screen answers');
    like($r->{body}, qr/この電子証明書は失効しています/, 'says the certificate is revoked');
    like($r->{body}, qr{href="/certgate/issue"}, 'with the way to reissue');
};

subtest 'a valid certificate still logs in and passes' => sub {
    $t->client_cert('alice01', name => 'alice-new');
    $t->certgatectl('cert', 'import', "$d/alice-new.crt", '--user', 'alice01');
    my $jar = $t->jar;
    my $r = $t->get('/certgate/', cert => 'alice-new');
    unlike($r->{body}, qr/有効期限が切れています|失効しています/, 'no notice for a good certificate');
    ok($t->login('alice01', 'Passw0rd!', cert => 'alice-new', jar => $jar)->{json}{ok}, 'logs in');
    is($t->get('/app/', cert => 'alice-new', cookies => $jar)->{status}, 200, 'reaches the app');
};

subtest 'nginx -t refuses a wrong value' => sub {
    $t->write_conf(conf('certgate_expired_certificates maybe;'));
    my ($rc, $out) = $t->nginx_t;
    isnt($rc, 0, 'nginx -t fails');
    like($out, qr/invalid value "maybe" in .*nginx\.conf:\d+/, 'names the value, file and line');
    $t->write_conf(conf('certgate_expired_certificates pass;'));
};

$t->done(allow => qr/invalid value "maybe"/);
done_testing;
