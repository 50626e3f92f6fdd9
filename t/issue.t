# Issuance part 2 (issue 5): ⑥ → ⑦ → ⑧ makes the certificate and the .p12
# in-process, the store records it, the download works once; revocation takes
# effect on every worker without a reload; renewal; the CRL.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use POSIX qw(strftime);
use Time::HiRes qw(sleep time);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
mkdir $t->dir . '/app';
Certgate::Test::write_file($t->dir . '/app/index.html', "business app\n");
$t->write_conf(<<'EOF', workers => 2);
    %%CERTGATE%%
    certgate_sync_interval 500ms;
    # R2 as the manual has it; R20's PC change (on by default) is t/self_revoke.t.
    certgate_self_revoke off;
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            root %%DIR%%;
            add_header X-Certgate-Serial $certgate_cert_serial always;
        }
    }
EOF
$t->start_nginx;
$t->add_org('ORG001');
my $pw = 'Passw0rd!';
$t->add_user('ORG001', $_, $pw, mail => "$_\@example.test") for qw(alice001 bob00001 renew001 renew002 dl000001);
my $d = $t->dir;

my $alice;
subtest '④ → ⑤ → ⑥ → ⑧: the .p12 and its certificate' => sub {
    my $before = time;
    $alice = $t->issue_certificate('alice001', $pw);
    ok($alice->{ok}, 'issued') or diag explain $alice;
    like($alice->{file_name}, qr/^alice001\d{14}\.p12$/, "file name <userID><YYYYMMDDhhmmss>.p12 ($alice->{file_name})");
    my ($stamp) = $alice->{file_name} =~ /(\d{14})\.p12$/;
    my $tokyo = do { local $ENV{TZ} = 'Asia/Tokyo'; POSIX::tzset(); my $s = strftime('%Y%m%d%H%M', localtime($before)); $s };
    POSIX::tzset();
    like($stamp, qr/^\Q@{[substr($tokyo, 0, 10)]}\E/, 'the time in the name is Tokyo time');

    my ($rc, $out) = Certgate::Test::run('openssl', 'pkcs12', '-in', $alice->{p12}, '-passin', "pass:$pw", '-noout');
    is($rc, 0, 'openssl pkcs12 opens it with the login password') or diag $out;
    ($rc, $out) = Certgate::Test::run('openssl', 'pkcs12', '-in', $alice->{p12}, '-passin', 'pass:Wrong0!pw', '-noout');
    isnt($rc, 0, 'and not with another password');
    ($rc, $out) = Certgate::Test::run('openssl', 'pkcs12', '-in', $alice->{p12}, '-passin', "pass:$pw", '-info', '-noout');
    like($out, qr/AES-256-CBC/, 'protected with AES-256 (PBKDF2)');

    my $text = `openssl x509 -in $d/alice001-issued.crt -noout -text -nameopt RFC2253`;
    like($text, qr/Subject: CN=alice001,O=Org ORG001/, 'subject CN = user ID, O = organisation');
    like($text, qr/email:alice001\@example\.test/, 'SAN email');
    like($text, qr/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment/, 'keyUsage (RSA)');
    like($text, qr/X509v3 Extended Key Usage:\s+TLS Web Client Authentication/, 'EKU clientAuth');
    like($text, qr/X509v3 Basic Constraints: critical\s+CA:FALSE/, 'CA:FALSE');
    like($text, qr/X509v3 Subject Key Identifier/, 'SKI');
    like($text, qr/X509v3 Authority Key Identifier/, 'AKI');
    like($text, qr/Public-Key: \(2048 bit\)/, 'RSA 2048 by default');
    my ($serial_hex) = $text =~ /Serial Number:\s*\n?\s*([0-9a-f:]+)/i;
    (my $bare = $serial_hex) =~ s/://g;
    cmp_ok(length($bare) * 4, '>=', 64, 'serial of at least 64 bits');

    # R1: valid through 23:59:59 Tokyo time of the 366th day counting the issue day.
    my $end = `openssl x509 -in $d/alice001-issued.crt -noout -enddate -dateopt iso_8601`;
    my @lt = do { local $ENV{TZ} = 'Asia/Tokyo'; POSIX::tzset(); localtime($before) };
    POSIX::tzset();
    my $expect = strftime('%Y-%m-%d', gmtime(POSIX::mktime(0, 0, 12, $lt[3] + 365, $lt[4], $lt[5])));
    like($end, qr/notAfter=\Q$expect\E 14:59:59Z/, "notAfter = $expect 23:59:59 JST");

    ($rc, $out) = Certgate::Test::run('openssl', 'verify', '-CAfile', "$d/ca.crt", "$d/alice001-issued.crt");
    like($out, qr/: OK/, 'openssl verify: the chain checks out');

    my ($db) = "$d/nssdb";
    mkdir $db;
    ($rc, $out) = Certgate::Test::run('certutil', '-N', '-d', "sql:$db", '--empty-password');
    ($rc, $out) = Certgate::Test::run('pk12util', '-i', $alice->{p12}, '-d', "sql:$db", '-W', $pw);
    is($rc, 0, "NSS pk12util imports it into a fresh database") or diag $out;

    my @certs = grep { $_->{kind} eq 'cert.issued' && $_->{subject} eq $alice->{serial} } $t->audit;
    is(scalar @certs, 1, 'the issuance is an event');
};

subtest 'the certificate passes certgate_require; a revocation stops it within 3 s, no reload' => sub {
    my $jar = $t->jar;
    my $l = $t->login('alice001', $pw, cert => $alice->{name}, jar => $jar);
    ok($l->{json}{ok}, 'logged in with the issued certificate') or diag explain $l->{json};
    my $ok = 0;
    for (1 .. 6) {    # both workers
        my $r = $t->get('/app/', cert => $alice->{name}, cookies => $jar, json => 1);
        $ok++ if $r->{status} == 200 && $r->{body} eq "business app\n";
    }
    is($ok, 6, 'the app answers (6 of 6 requests)');
    my ($rc, $out) = $t->certgatectl('cert', 'revoke', $alice->{serial}, '--reason', 'keyCompromise');
    is($rc, 0, 'certgatectl cert revoke') or diag $out;
    # Timed from when the first of six refusals in a row was asked (see
    # t/login.t, ends_within_3s).
    my $start = time;
    my $refused_at;
    while (time - $start < 10) {
        my $asked = time;
        my $n = 0;
        for (1 .. 6) {
            my $r = $t->get('/app/', cert => $alice->{name}, cookies => $jar, json => 1);
            $n++ if $r->{status} == 401 && $r->{body} =~ /certificate_revoked/;
        }
        if ($n == 6) { $refused_at = $asked; last }
        sleep 0.2;
    }
    ok(defined $refused_at && $refused_at - $start <= 3,
        sprintf('refused with certificate_revoked by every worker within 3 s (%s)',
            defined $refused_at ? sprintf('%.1f s', $refused_at - $start) : 'not in 10 s'));
};

subtest 'a revoked user can reissue (R5)' => sub {
    my $again = $t->issue_certificate('alice001', $pw, name => 'alice001-second');
    ok($again->{ok}, 'issued again after the revocation') or diag explain $again;
    isnt($again->{serial}, $alice->{serial}, 'a new serial');
    my $jar = $t->jar;
    my $l = $t->login('alice001', $pw, cert => $again->{name}, jar => $jar);
    ok($l->{json}{ok}, 'the new certificate logs in');
};

sub set_not_after {
    my ($serial, $not_after) = @_;
    $t->sql("UPDATE certificates SET not_after = $not_after WHERE serial = '$serial'");
}

subtest 'renewal (R2)' => sub {
    my $first = $t->issue_certificate('renew001', $pw);
    ok($first->{ok}, 'first certificate');
    set_not_after($first->{serial}, int(time) + 31 * 86400 - 600);
    my $r = $t->submit('/certgate/issue', { user_id => 'renew001', password => $pw });
    is($r->{json}{error}, 'already_issued', '31 days before expiry: already_issued');
    set_not_after($first->{serial}, int(time) + 30 * 86400 - 600);

    # A session with the old certificate, opened before renewal.
    my $jar = $t->jar;
    ok($t->login('renew001', $pw, cert => $first->{name}, jar => $jar)->{json}{ok}, 'logged in with the old certificate');
    my $second = $t->issue_certificate('renew001', $pw, name => 'renew001-new');
    ok($second->{ok}, '30 days before expiry: renewed') or diag explain $second;
    my ($rc, $out) = $t->certgatectl('--json', 'cert', 'show', $first->{serial});
    like($out, qr/"status":"superseded"/, 'the old certificate is superseded');
    # The supersede ends the old certificate's sessions, like a revocation
    # (t/issue_transaction.t times it on an open connection too).
    my ($g, $refused) = (undef, 0);
    for (1 .. 30) {
        $g = $t->get('/app/', cert => $first->{name}, cookies => $jar, json => 1);
        if ($g->{status} == 401) { $refused = 1; last }
        sleep 0.1;
    }
    ok($refused, 'once superseded, the old serial is refused by certgate_require');
    like($g->{body}, qr/certificate_revoked/, 'as certificate_revoked');
    my $l = $t->login('renew001', $pw, cert => $second->{name});
    ok($l->{json}{ok}, 'the new certificate logs in');
};

subtest 'expired old certificate is refused after renewal' => sub {
    my $name = $t->client_cert_until('renew002', time + 4, store_user => 'renew002');
    my $jar = $t->jar;
    ok($t->login('renew002', $pw, cert => $name, jar => $jar)->{json}{ok}, 'logged in with a certificate about to expire');
    my $second = $t->issue_certificate('renew002', $pw, name => 'renew002-new');
    ok($second->{ok}, 'renewed');
    # Superseded at the hand-over: refused from then on (within the feed
    # interval), and a fortiori once expired.
    my $g;
    for (1 .. 30) {
        $g = $t->get('/app/', cert => $name, cookies => $jar, json => 1);
        last if $g->{status} != 200;
        sleep 0.1;
    }
    ok($g->{status} == 400 || ($g->{status} == 401 && $g->{body} =~ /certificate_(revoked|expired)/),
        "superseded, refused ($g->{status})");
    sleep 5;
    $g = $t->get('/app/', cert => $name, cookies => $jar, json => 1);
    # A new connection is refused by nginx's TLS check already (400); an
    # open one by certgate (t/login.t shows that).
    ok($g->{status} == 400 || ($g->{status} == 401 && $g->{body} =~ /certificate_expired/),
        "once expired, refused ($g->{status})");
};

subtest 'the download token: once, this flow only; ⑧ reload issues nothing' => sub {
    my $jar = $t->jar;
    my $r = $t->submit('/certgate/issue', { user_id => 'dl000001', password => $pw }, jar => $jar);
    ok($r->{json}{ok}, '④');
    $r = $t->submit('/certgate/issue/code', { code => $t->code_for('dl000001') }, jar => $jar);
    ok($r->{json}{ok}, '⑤');
    $r = $t->submit('/certgate/issue/confirm', {}, jar => $jar);
    ok($r->{json}{ok}, '⑥');
    my $download = $r->{json}{download};
    like($download, qr{^/certgate/issue/download/[\w-]{32}$}, 'a one-time download path');

    my $other = $t->jar;
    my $g = $t->get($download, cookies => $other);
    is($g->{status}, 404, 'another browser (another flow) cannot use the token');
    $g = $t->get('/certgate/issue/download/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', cookies => $jar);
    is($g->{status}, 404, 'an unknown token is refused');

    # ⑥ again and ⑧ reloads: nothing new.
    my $again = $t->submit('/certgate/issue/confirm', {}, jar => $jar);
    ok($again->{json}{ok}, 'a second 発行 answers');
    my $page = $t->get('/certgate/issue/confirm', cookies => $jar);
    like($page->{body}, qr{<h1>電子証明書発行結果</h1>}, 'reloading ⑧ shows the result');
    like($page->{body}, qr{data-auto-download}, 'with the download link that starts by itself');
    my ($rc, $out) = $t->certgatectl('--json', 'cert', 'list', '--user', 'dl000001');
    my $count = () = $out =~ /"serial"/g;
    is($count, 1, 'the store holds one certificate');

    $g = $t->get($download, cookies => $jar);
    is($g->{status}, 200, 'the download works');
    like($g->{headers}{'content-type'}, qr{application/x-pkcs12}, 'as a .p12');
    like($g->{headers}{'content-disposition'}, qr{attachment; filename="dl000001\d{14}\.p12"}, 'with its file name');
    is($g->{headers}{'cache-control'}, 'no-store', 'not cached');
    $g = $t->get($download, cookies => $jar);
    is($g->{status}, 410, 'a second GET is refused');
    like($g->{body}, qr/ダウンロード済み/, 'saying the file was downloaded');
};

subtest 'the CRL lists the revoked serial and verifies' => sub {
    my $g = $t->get('/certgate/crl');
    is($g->{status}, 200, 'GET /certgate/crl');
    like($g->{headers}{'content-type'}, qr{application/pkix-crl}, 'DER CRL');
    Certgate::Test::write_file("$d/crl.der", $g->{raw_body});
    my ($rc, $out) = Certgate::Test::run('openssl', 'crl', '-inform', 'DER', '-in', "$d/crl.der", '-CAfile', "$d/ca.crt", '-noout', '-text');
    like($out, qr/verify OK/, 'openssl crl -CAfile: verify OK');
    like($out, qr/Serial Number: \Q$alice->{serial}\E/i, 'lists the revoked serial');
};

$t->done;
done_testing;
