# The CA key in an HSM (issue 9): a SoftHSM2 token made for this suite, the
# CA key generated inside it by `certgatectl init --hsm`, nginx signing
# through OpenSSL's pkcs11 engine in its workers; the full ④–⑧ flow, the key
# never leaving the token, nginx -t refusing a wrong PIN, an unknown object
# and a key that does not match the certificate, and an HSM that stops
# answering while nginx runs.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use Certgate::Test;

my $softhsm = '/usr/lib/softhsm/libsofthsm2.so';
my ($engines_dir) = `openssl version -e 2>/dev/null` =~ /ENGINESDIR: "([^"]+)"/;
sub on_path { my ($cmd) = @_; return grep { -x "$_/$cmd" } split /:/, $ENV{PATH} }
BAIL_OUT "softhsm2 is not installed ($softhsm)"
    unless -r $softhsm && on_path('softhsm2-util');
BAIL_OUT 'opensc is not installed (pkcs11-tool)' unless on_path('pkcs11-tool');
BAIL_OUT 'libengine-pkcs11-openssl is not installed (no pkcs11.so in OpenSSL\'s ENGINESDIR)'
    unless $engines_dir && -r "$engines_dir/pkcs11.so";

my $t = Certgate::Test->new;    # the store, and a PEM CA for the server certificate
my $d = $t->dir;

# The token lives in the suite's directory; nginx's workers need the variable
# too (nginx.conf says `env SOFTHSM2_CONF;`).
mkdir "$d/tokens";
Certgate::Test::write_file("$d/softhsm2.conf",
    "directories.tokendir = $d/tokens\nobjectstore.backend = file\nlog.level = ERROR\n");
$ENV{SOFTHSM2_CONF} = "$d/softhsm2.conf";
my ($rc, $out) = Certgate::Test::run('softhsm2-util', '--init-token', '--free', '--label', 'certgate',
    '--pin', '1234', '--so-pin', '56781234');
die "softhsm2-util: $out" if $rc;
Certgate::Test::write_file("$d/hsm.pin", "1234\n");
chmod 0400, "$d/hsm.pin";
Certgate::Test::write_file("$d/wrong.pin", "9999\n");
chmod 0400, "$d/wrong.pin";

my $key_spec = 'engine:pkcs11:pkcs11:token=certgate;object=ca;type=private';

# nginx.conf with certgate_ca_key in the token; the options replace a line.
# Returns the file and the line of certgate_ca_key.
sub hsm_conf {
    my (%o) = @_;
    my $key = $o{key} // $key_spec;
    my $cert = $o{cert} // "$d/hsm-ca.crt";
    my $pin = $o{pin} // "$d/hsm.pin";
    my $port = $t->port('https');
    my $key_type = $o{key_type} ? "certgate_key_type $o{key_type};" : '';
    my $running = Certgate::Test::read_file("$d/nginx.conf");    # write_conf replaces it
    $t->write_conf(<<"EOF", workers => $o{workers} || 2);
    certgate_store sqlite:$d/certgate.db;
    certgate_memcached 127.0.0.1:@{[$t->port('memcached')]};
    certgate_secret $d/secret;
    certgate_ca_certificate $cert;
    certgate_ca_key "$key";
    certgate_ca_key_pin_file $pin;
    certgate_pkcs11_module $softhsm;
    certgate_mail smtp://127.0.0.1:@{[$t->port('smtp')]};
    certgate_mail_from certgate\@example.test;
    $key_type
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $d/server.crt;
        ssl_certificate_key $d/server.key;
        ssl_client_certificate $d/hsm-ca.crt;
        ssl_verify_client optional_no_ca;
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            return 200 "user=\$certgate_user serial=\$certgate_cert_serial\\n";
        }
    }
EOF
    my $conf = Certgate::Test::read_file("$d/nginx.conf");
    $conf = "env SOFTHSM2_CONF;\nenv CERTGATE_TEST_KEYGEN_FAILS;\n$conf";
    my $file = $o{file} ? "$d/$o{file}" : "$d/nginx.conf";
    Certgate::Test::write_file($file, $conf);
    Certgate::Test::write_file("$d/nginx.conf", $running) if $o{file} && defined $running;
    my @lines = split /\n/, $conf;
    my ($line) = grep { $lines[$_ - 1] =~ /^\s*certgate_ca_key\s/ } 1 .. @lines;
    return ($file, $line);
}

sub pkcs11_tool {
    return Certgate::Test::run('pkcs11-tool', '--module', $softhsm, '--token-label', 'certgate',
        '--login', '--pin', '1234', @_);
}

subtest 'certgatectl init --hsm makes the CA key inside the token' => sub {
    my ($rc, $out) = $t->certgatectl('init', '--hsm', '--ca-cert', "$d/hsm-ca.crt", '--ca-key',
        $key_spec, '--pin-file', "$d/hsm.pin", '--pkcs11-module', $softhsm, '--ca-cn',
        'certgate HSM CA');
    is($rc, 0, 'exit 0') or diag $out;
    like($out, qr/generated a rsa:2048 key in token "certgate"/, 'it says the token made the key');
    my $text = `openssl x509 -in $d/hsm-ca.crt -noout -text`;
    like($text, qr/Subject: CN = certgate HSM CA/, 'the CA certificate names the CA');
    like($text, qr/CA:TRUE/, 'and is a CA');

    ($rc, $out) = $t->certgatectl('init', '--hsm', '--ca-cert', "$d/hsm-ca.crt", '--ca-key',
        $key_spec, '--pin-file', "$d/hsm.pin", '--pkcs11-module', $softhsm);
    is($rc, 0, 'a second run exits 0') or diag $out;
    like($out, qr/kept the existing CA/, 'and keeps the CA');
    ($rc, $out) = pkcs11_tool('--list-objects', '--type', 'privkey');
    is(() = $out =~ /Private Key Object/g, 1, 'one private key in the token');
};

subtest 'the key cannot leave the token' => sub {
    my ($rc, $out) = pkcs11_tool('--list-objects', '--type', 'privkey');
    my ($access) = $out =~ /label:\s+ca\n(?:.*\n)*?\s+Access:\s+(.*)/;
    ok(defined $access, 'pkcs11-tool lists the key with its attributes') or diag $out;
    $access //= '';
    like($access, qr/(^|, )sensitive(,|$)/, 'CKA_SENSITIVE true');
    like($access, qr/never extractable/, 'CKA_NEVER_EXTRACTABLE true');
    unlike($access =~ s/never extractable//r, qr/extractable/, 'CKA_EXTRACTABLE false');
    like($access, qr/(^|, )local(,|$)/, 'CKA_LOCAL: generated inside the token');
};

$t->start_memcached;
$t->start_smtp;
hsm_conf();
($rc, $out) = $t->nginx_t;
is($rc, 0, 'nginx -t accepts the HSM key') or diag $out;
$t->start_nginx;
$t->add_org('ORG001');
my $pw = 'Passw0rd!';
$t->add_user('ORG001', $_, $pw) for qw(hsmuser1 hsmuser2);

subtest '④ → ⑤ → ⑥ → ⑧ signed by the key in the token' => sub {
    my $r = $t->issue_certificate('hsmuser1', $pw);
    ok($r->{ok}, 'issued') or return diag explain $r;
    my ($rc, $out) = Certgate::Test::run('openssl', 'verify', '-CAfile', "$d/hsm-ca.crt",
        "$d/$r->{name}.crt");
    like($out, qr/: OK/, 'openssl verify -CAfile hsm-ca.crt: OK') or diag $out;
    ($rc, $out) = Certgate::Test::run('openssl', 'verify', '-CAfile', "$d/ca.crt", "$d/$r->{name}.crt");
    isnt($rc, 0, 'and not against the PEM CA');
    ($rc, $out) = $t->certgatectl('--json', 'cert', 'list', '--user', 'hsmuser1');
    like($out, qr/"serial":"$r->{serial}"/, 'the store records it');

    my $login = $t->login('hsmuser1', $pw, cert => $r->{name});
    ok($login->{json}{ok}, 'and it logs in') or diag explain $login->{json};
};

# User keys are made by OpenSSL's default provider, never by the engine that
# holds the CA key (issue 12.8): only the CA key lives in the HSM.
subtest 'ec:P-256 user keys with the CA key in the token' => sub {
    hsm_conf(key_type => 'ec:P-256');
    $t->stop_nginx;
    $t->start_nginx;
    $t->add_user('ORG001', 'hsmecuser1', $pw);
    my $r = $t->issue_certificate('hsmecuser1', $pw);
    ok($r->{ok}, 'issued') or return diag explain $r;
    my $text = `openssl x509 -in $d/$r->{name}.crt -noout -text`;
    like($text, qr/Public Key Algorithm: id-ecPublicKey/, 'an EC key');
    like($text, qr/NIST CURVE: P-256|prime256v1/, 'on P-256');
    my ($rc, $out) = Certgate::Test::run('openssl', 'verify', '-CAfile', "$d/hsm-ca.crt",
        "$d/$r->{name}.crt");
    like($out, qr/: OK/, 'signed by the key in the token') or diag $out;
    unlike($t->error_log, qr/unknown group|this worker is replaced/, 'no key-generation error, no recycled worker');
    my ($pkcs11_rc, $objects) = pkcs11_tool('--list-objects', '--type', 'privkey');
    is(() = $objects =~ /Private Key Object/g, 1, 'the token still holds only the CA key');
    hsm_conf();
    $t->stop_nginx;
    $t->start_nginx;
};

# Only a failed signature with the engine key recycles a worker: a key that
# cannot be made is an error of this issuance, not of the HSM.
subtest 'a CA error that is not the HSM\'s does not replace the worker' => sub {
    local $ENV{CERTGATE_TEST_KEYGEN_FAILS} = '1';
    hsm_conf(workers => 1);
    $t->stop_nginx;
    $t->start_nginx;
    $t->add_user('ORG001', 'hsmkeyfail1', $pw);
    my $before = () = $t->error_log =~ /this worker is replaced/g;
    my $r = $t->issue_certificate('hsmkeyfail1', $pw);
    is($r->{error}, 'unavailable', '⑥ answers unavailable') or diag explain $r;
    like($t->error_log, qr/issuance failed: cannot generate a rsa:2048 key/, 'the log says why');
    sleep 2.5;    # the worker's timer looks every second in test builds
    my $after = () = $t->error_log =~ /this worker is replaced/g;
    is($after, $before, 'the worker is not replaced');
    delete $ENV{CERTGATE_TEST_KEYGEN_FAILS};
    hsm_conf();
    $t->stop_nginx;
    $t->start_nginx;
};

# Every nginx -t below is a fresh process: libp11 checks the PIN on the first
# load of a process (see src/core/adapters/ca.hpp).
sub nginx_t_fails {
    my ($name, $message, %o) = @_;
    my ($file, $line) = hsm_conf(%o, file => "$name.conf");
    local %ENV = (%ENV, $t->sanitizer_env);
    my ($rc, $out) = Certgate::Test::run(Certgate::Test::nginx_bin(), '-t', '-p', $d, '-c', $file,
        '-e', "$d/$name-t.log");
    isnt($rc, 0, "$name: nginx -t fails");
    like($out, qr/\[emerg\] [^\n]*$message[^\n]* in \Q$file\E:$line\n/,
        "$name: the message, at certgate_ca_key's line ($line)") or diag $out;
}

subtest 'nginx -t: a wrong PIN' => sub {
    nginx_t_fails('wrong-pin', qr/cannot load CA key .*PIN incorrect.*\Q$d\E\/wrong\.pin/, pin => "$d/wrong.pin");
};

subtest 'nginx -t: an object the token does not hold' => sub {
    nginx_t_fails('unknown-object', qr/cannot load CA key .*object=nope.*object not found/,
        key => 'engine:pkcs11:pkcs11:token=certgate;object=nope;type=private');
};

subtest 'nginx -t: a key that does not match certgate_ca_certificate' => sub {
    nginx_t_fails('mismatch', qr/CA key \Q$key_spec\E does not match CA certificate \Q$d\E\/ca\.crt/,
        cert => "$d/ca.crt");
};

# A worker keeps its PKCS#11 object handle; SoftHSM invalidates it when the
# token goes away and gives the object a new one when it is back. A worker
# whose signature failed is replaced by a fresh one (its timer), which opens
# the key again: once the token is back, issuance works with no reload.
# See docs/operations.md, "When the HSM fails".
subtest 'the HSM stops answering: 503, nothing recorded; back: issuance works, no reload' => sub {
    my $count = sub {
        my ($rc, $out) = $t->certgatectl('--json', 'cert', 'list', '--user', 'hsmuser2');
        return scalar(() = $out =~ /"serial"/g);
    };
    my $jar = $t->jar;
    my $r = $t->submit('/certgate/issue', { user_id => 'hsmuser2', password => $pw }, jar => $jar);
    ok($r->{json}{ok}, '④ passes') or diag explain $r->{json};
    my $code = $t->code_for('hsmuser2');
    $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    ok($r->{json}{ok}, '⑤ passes') or diag explain $r->{json};

    # The token's files go away, as a token that is unplugged.
    rename "$d/tokens", "$d/tokens-away" or die "rename: $!";
    mkdir "$d/tokens";
    $r = $t->submit('/certgate/issue/confirm', {}, jar => $jar);
    is($r->{status}, 503, '⑥ answers 503');
    is($r->{json}{error}, 'unavailable', 'error unavailable') or diag explain $r->{json};
    is($count->(), 0, 'no certificate recorded');
    $r = $t->submit('/certgate/issue/confirm', {}, jar => $jar, html => 1);
    like($r->{body}, qr/ただいまサービスを利用できません/, 'the page says so');
    like($t->error_log, qr/\[error\].*issuance failed: cannot sign the certificate with the CA key/,
        'the error log says why');

    rmdir "$d/tokens";
    rename "$d/tokens-away", "$d/tokens" or die "rename: $!";
    my $ok;
    for (1 .. 20) {
        $ok = $t->issue_certificate('hsmuser2', $pw);
        last if $ok->{ok};
        sleep 1;
    }
    ok($ok->{ok}, 'the token back: issuance works again, without a reload') or diag explain $ok;
    my $replaced = 0;
    for (1 .. 50) {
        if ($t->error_log =~ /this worker is replaced by a new one/) { $replaced = 1; last }
        sleep 0.1;
    }
    ok($replaced, 'the worker whose HSM session broke was replaced by a new one');
    is($count->(), 1, 'one certificate recorded');
    my ($rc, $out) = Certgate::Test::run('openssl', 'verify', '-CAfile', "$d/hsm-ca.crt",
        "$d/" . ($ok->{name} // 'none') . '.crt');
    like($out, qr/: OK/, 'signed by the key in the token');
};

$t->done;
done_testing;
