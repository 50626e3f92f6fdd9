# certgate_require: a logged-in user with a client certificate of our CA
# passes; no certificate, or one of another CA, is refused: 302 to the portal
# for a browser, 401 JSON for a script. The variables carry the identity.
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
mkdir $t->dir . '/app';
Certgate::Test::write_file($t->dir . '/app/index.html', "business app\n");
$t->write_conf(<<'EOF');
    %%CERTGATE%%
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            root %%DIR%%;
            add_header X-Certgate-User $certgate_user always;
            add_header X-Certgate-Org $certgate_org always;
            add_header X-Certgate-Serial $certgate_cert_serial always;
            add_header X-Certgate-Days-Left $certgate_cert_days_left always;
        }
    }
EOF
$t->start_nginx;

$t->add_org('ORG001');
$t->add_user('ORG001', 'alice01', 'Passw0rd!');
$t->client_cert('alice01', org => 'Demo Org');
$t->certgatectl('cert', 'import', $t->dir . '/alice01.crt', '--user', 'alice01');
$t->client_cert('mallory1', ca => 'other');
my $jar = $t->jar;
ok($t->login('alice01', 'Passw0rd!', cert => 'alice01', jar => $jar)->{json}{ok}, 'alice01 logs in');

subtest 'a certificate from our CA passes' => sub {
    my $r = $t->get('/app/', cert => 'alice01', cookies => $jar);
    is($r->{status}, 200, 'status 200');
    is($r->{body}, "business app\n", 'the app answers');
    is($r->{headers}{'x-certgate-user'}, 'alice01', '$certgate_user is the CN');
    is($r->{headers}{'x-certgate-org'}, 'ORG001', '$certgate_org is the organisation');
    my $serial = `openssl x509 -noout -serial -in @{[$t->dir]}/alice01.crt`;
    $serial =~ s/^serial=//; chomp $serial;
    is($r->{headers}{'x-certgate-serial'}, $serial, '$certgate_cert_serial is the serial');
    like($r->{headers}{'x-certgate-days-left'}, qr/^(29|30)$/, '$certgate_cert_days_left');
};

subtest 'no certificate: browser goes to the portal, script gets 401' => sub {
    my $r = $t->get('/app/');
    is($r->{status}, 302, 'browser: 302');
    like($r->{headers}{location}, qr{^(https://127\.0\.0\.1:\d+)?/certgate/\?error=no_certificate$}, 'to the login screen with the reason');
    $r = $t->get('/app/', json => 1);
    is($r->{status}, 401, 'JSON: 401');
    like($r->{body}, qr{"ok":false,"error":"no_certificate"}, 'error code no_certificate');
    unlike($r->{body}, qr/business app/, 'the app was not reached');
};

subtest 'a certificate from another CA is refused' => sub {
    my $r = $t->get('/app/', cert => 'mallory1', cookies => $jar);
    is($r->{status}, 302, 'browser: 302');
    like($r->{headers}{location}, qr{^(https://127\.0\.0\.1:\d+)?/certgate/\?error=certificate_mismatch$}, 'with the reason');
    $r = $t->get('/app/', cert => 'mallory1', json => 1);
    is($r->{status}, 401, 'JSON: 401');
    like($r->{body}, qr{"error":"certificate_mismatch"}, 'error code certificate_mismatch');
};

subtest 'the login screen explains a refusal' => sub {
    my $r = $t->get('/certgate/?error=no_certificate');
    like($r->{body}, qr{電子証明書が選択されていません}, 'the clerk reads why');
    like($r->{body}, qr{開いているブラウザをすべて閉じ}, 'with the hint of the manual');
    $r = $t->get('/certgate/?error=%3Cscript%3E');
    unlike($r->{body}, qr{<script>}, 'an unknown error code is ignored');
};

$t->done;
done_testing;
