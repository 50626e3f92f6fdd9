# Rotating the CA (issue 9, docs/operations.md "Rotating the CA"): during the
# overlap the new CA signs and both CAs are trusted on the protected path, so
# the users' certificates of the old CA keep working until they renew; once
# the previous CA is dropped its certificates are refused. Broken
# certgate_ca_certificate_previous files fail nginx -t at their line.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $d = $t->dir;
my $pw = 'Passw0rd!';

# The config of each stage: which CA signs, which is still trusted.
sub conf_for {
    my (%o) = @_;
    my $common = $t->certgate_common;
    $common =~ s{\Q$d\E/ca\.(crt|key)}{$d/$o{ca}.$1}g;
    my $previous = $o{previous} ? "    certgate_ca_certificate_previous $d/$o{previous};\n" : '';
    return $t->write_conf(<<"EOF", workers => 2);
$common$previous
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location / { return 200 "user=\$http_x_user serial=\$http_x_serial\\n"; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        ssl_certificate $d/server.crt;
        ssl_certificate_key $d/server.key;
        ssl_client_certificate $d/client-cas.pem;
        ssl_verify_client optional;
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            proxy_set_header X-User \$certgate_user;
            proxy_set_header X-Serial \$certgate_cert_serial;
            proxy_pass http://127.0.0.1:%%HTTP_PORT%%;
        }
    }
EOF
}

sub reaches_app {
    my ($user, $cert) = @_;
    my $jar = $t->jar;
    my $r = $t->login($user, $pw, cert => $cert, jar => $jar);
    return $r unless $r->{json}{ok};
    my $app = $t->get('/app/', cert => $cert, cookies => $jar);
    $r->{app} = $app;
    return $r;
}

# Stage 0: the old CA (the suite's demo CA) alone.
Certgate::Test::write_file("$d/client-cas.pem", Certgate::Test::read_file("$d/ca.crt"));
conf_for(ca => 'ca');
$t->start_nginx;
$t->add_org('ORG001');
$t->add_user('ORG001', $_, $pw) for qw(rotold01 rotnew01);
my $old = $t->issue_certificate('rotold01', $pw);
ok($old->{ok}, 'a certificate of the old CA') or diag explain $old;

# The new CA: a new key under the same name, as a bank renews its CA.
my $subject = Certgate::Test::openssl(qw(x509 -noout -subject -nameopt compat -in), "$d/ca.crt");
$subject =~ s/^subject=\s*//;
chomp $subject;
Certgate::Test::openssl(qw(req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650),
    '-subj', $subject, '-keyout', "$d/new-ca.key", '-out', "$d/new-ca.crt",
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
isnt(Certgate::Test::read_file("$d/new-ca.crt"), Certgate::Test::read_file("$d/ca.crt"), 'a new CA certificate');

subtest 'the overlap: the new CA signs, both are trusted' => sub {
    Certgate::Test::write_file("$d/client-cas.pem",
        Certgate::Test::read_file("$d/new-ca.crt") . Certgate::Test::read_file("$d/ca.crt"));
    conf_for(ca => 'new-ca', previous => 'ca.crt');
    my ($rc, $out) = $t->nginx_t;
    is($rc, 0, 'nginx -t passes') or diag $out;
    $t->reload_nginx(workers => 2);

    my $r = reaches_app('rotold01', $old->{name});
    ok($r->{json}{ok}, 'a certificate of the old CA still logs in') or diag explain $r->{json};
    like($r->{app}{body} // "status $r->{app}{status} $r->{app}{raw}", qr/user=rotold01 serial=\Q$old->{serial}\E/, 'and reaches the app');

    my $new = $t->issue_certificate('rotnew01', $pw);
    ok($new->{ok}, 'issuance goes on') or diag explain $new;
    my ($vrc) = Certgate::Test::run(qw(openssl verify -CAfile), "$d/new-ca.crt", "$d/$new->{name}.crt");
    is($vrc, 0, 'the new certificate is signed by the new CA key');
    ($vrc) = Certgate::Test::run(qw(openssl verify -CAfile), "$d/ca.crt", "$d/$new->{name}.crt");
    isnt($vrc, 0, 'and not by the old one');
    my $chain = `openssl pkcs12 -in $new->{p12} -passin pass:$pw -nokeys -cacerts 2>/dev/null`;
    my $new_ca_pem = Certgate::Test::read_file("$d/new-ca.crt");
    my ($body) = $new_ca_pem =~ /-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END/s;
    $body =~ s/\s+//g;
    (my $chain_flat = $chain) =~ s/\s+//g;
    ok(index($chain_flat, $body) >= 0, 'the .p12 carries the new CA certificate');

    $r = reaches_app('rotnew01', $new->{name});
    ok($r->{json}{ok}, 'a certificate of the new CA logs in') or diag explain $r->{json};
    like($r->{app}{body} // '', qr/user=rotnew01/, 'and reaches the app');

    # The old certificate still counts as live: it has more than 30 days
    # left, so ⑥ offers to revoke it (R20, certgate_self_revoke on).
    my $jar = $t->jar;
    $r = $t->submit('/certgate/issue', { user_id => 'rotold01', password => $pw }, jar => $jar);
    ok($r->{json}{ok}, '④ passes') or diag explain $r->{json};
    $r = $t->submit('/certgate/issue/code', { code => $t->code_for('rotold01', 1) }, jar => $jar);
    $r = $t->get('/certgate/issue/confirm', json => 1, cookies => $jar);
    is(Certgate::Test::json_of($r)->{replace}, $old->{serial}, 'the old certificate still counts as live');
};

subtest 'the overlap ends: the old CA is no longer trusted' => sub {
    # TLS would refuse the old CA once ssl_client_certificate drops it; here
    # it still lists both, so the refusal is certgate's own check.
    conf_for(ca => 'new-ca');
    $t->reload_nginx(workers => 2);
    my $r = reaches_app('rotold01', $old->{name});
    ok(!$r->{json}{ok}, 'a certificate of the old CA is refused');
    is($r->{json}{error}, 'certificate_mismatch', 'as a certificate that is not ours');
    my $app = $t->get('/app/', cert => $old->{name}, json => 1);
    is($app->{status}, 401, 'and the protected location answers 401');
};

subtest 'a broken certgate_ca_certificate_previous fails nginx -t at its line' => sub {
    $t->client_cert('leaf0001', name => 'leaf');
    Certgate::Test::write_file("$d/garbage.pem", "not a certificate\n");
    my @cases = (
        ['the current CA', 'new-ca.crt', qr/certificate 1 in \S+new-ca\.crt is the current CA certificate/],
        ['a user certificate', 'leaf.crt', qr/certificate 1 in \S+leaf\.crt is not a CA certificate/],
        ['no certificate', 'garbage.pem', qr/no PEM certificate in \S+garbage\.pem/],
        ['a missing file', 'nosuch.pem', qr/nosuch\.pem/],
    );
    for my $case (@cases) {
        my ($what, $file, $re) = @$case;
        my $conf = conf_for(ca => 'new-ca', previous => $file);
        my $text = Certgate::Test::read_file($conf);
        my $line = 1 + (() = substr($text, 0, index($text, 'certgate_ca_certificate_previous')) =~ /\n/g);
        my ($rc, $out) = $t->nginx_t;
        isnt($rc, 0, "$what: nginx -t fails");
        like($out, qr/\[emerg\].*$re.*in \Q$conf\E:$line/, "$what: the message names the file and line $line")
            or diag $out;
    }
    # Back to a good config, so the suite ends with nginx running as it was.
    conf_for(ca => 'new-ca');
};

$t->done(allow => qr/certgate_ca_certificate_previous|previous CA certificates|nosuch\.pem|leaf\.crt|garbage\.pem|new-ca\.crt is the current/);
done_testing;
