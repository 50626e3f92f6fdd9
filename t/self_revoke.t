# R20, the self-service PC change (issue 16 part B): a user who passes ④
# and ⑤ while holding a live certificate is offered 電子証明書を失効して再発行
# on ⑥. Pressing it revokes the old certificate (reason superseded, in the
# audit trail), mails the user and, for a general user, its master, and
# issues the new one in the same flow. The revocation feed refuses the old
# certificate on the protected path; the new one logs in. With
# certgate_self_revoke off, ④ refuses as before (already issued).
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $conf = <<'EOF';
    %%CERTGATE%%
    certgate_sync_interval 1s;
    SELF_REVOKE
    server {
        %%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ { certgate_require; return 200 "app $certgate_user\n"; }
    }
EOF
sub conf_with { my ($line) = @_; (my $c = $conf) =~ s/SELF_REVOKE/$line/; return $c }
$t->write_conf(conf_with(''));
$t->start_nginx;

$t->add_org('ORG001');
$t->add_user('ORG001', 'mast0001', 'Passw0rd!', master => 1);
$t->add_user('ORG001', 'genr0001', 'Passw0rd!');

my $old = $t->issue_certificate('genr0001', 'Passw0rd!', name => 'old-pc');
ok($old->{ok}, 'the first certificate (the old PC)') or diag explain $old;
my $old_jar = $t->jar;
my $r = $t->login('genr0001', 'Passw0rd!', cert => 'old-pc', jar => $old_jar);
ok($r->{json}{ok}, 'the old PC logs in') or diag $r->{body};
is($t->get('/app/', cert => 'old-pc', cookies => $old_jar)->{status}, 200, 'and reaches the app');

my $new_jar = $t->jar;  # the new PC's browser
my $mails_before = () = $t->decoded_mails;

subtest '④ and ⑤ pass with a live certificate; ⑥ offers to revoke it' => sub {
    my $r = $t->submit('/certgate/issue', { user_id => 'genr0001', password => 'Passw0rd!' },
        jar => $new_jar);
    ok($r->{json}{ok}, '④ passes (not already_issued)') or diag $r->{body};
    my $code = $t->code_for('genr0001', 1);
    $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $new_jar);
    ok($r->{json}{ok}, '⑤ passes') or diag $r->{body};
    $r = $t->get('/certgate/issue/confirm', json => 1, cookies => $new_jar);
    is(Certgate::Test::json_of($r)->{replace}, $old->{serial}, 'JSON: the serial ⑥ will revoke');
    $r = $t->get('/certgate/issue/confirm', cookies => $new_jar);
    like($r->{body}, qr{<button type="submit" class="cg-primary">電子証明書を失効して再発行</button>},
        'the button says 電子証明書を失効して再発行');
    like($r->{body}, qr/\Q$old->{serial}\E/, 'the page names the certificate');
    like($r->{body}, qr/有効な電子証明書をお持ちです/, 'and says why');
    is($t->sql("SELECT status FROM certificates WHERE serial = '$old->{serial}'"), "issued\n",
        'nothing revoked before the button');
};

my $new;
subtest '電子証明書を失効して再発行: the old one is revoked, the new one issued' => sub {
    my $r = $t->submit('/certgate/issue/confirm', {}, jar => $new_jar);
    ok($r->{json}{ok} && $r->{json}{download}, '⑥ issues') or diag $r->{body};
    my $dl = $t->request($r->{json}{download}, cookies => $new_jar);
    is($dl->{status}, 200, 'the .p12 downloads');
    # The new PC's certificate, as curl's --cert/--key.
    my $d = $t->dir;
    Certgate::Test::write_file("$d/new-pc.p12", $dl->{raw_body});
    Certgate::Test::run('openssl', 'pkcs12', '-in', "$d/new-pc.p12", '-passin', 'pass:Passw0rd!',
        '-nodes', '-clcerts', '-out', "$d/new-pc.pem");
    Certgate::Test::run('openssl', 'x509', '-in', "$d/new-pc.pem", '-out', "$d/new-pc.crt");
    Certgate::Test::run('openssl', 'pkey', '-in', "$d/new-pc.pem", '-out', "$d/new-pc.key");
    is($t->sql("SELECT status || ' ' || reason FROM certificates WHERE serial = '$old->{serial}'"),
        "revoked superseded\n", 'the old certificate: revoked, reason superseded');
    my @ev = $t->audit;
    ok((grep { $_->{kind} eq 'cert.revoked' && $_->{subject} eq $old->{serial}
        && $_->{actor} eq 'genr0001' && ($_->{detail} // '') =~ /reason=superseded/ } @ev),
        'cert.revoked in the audit trail, by the user');
    ok((grep { $_->{kind} eq 'cert.self_revoked' && $_->{subject} eq $old->{serial} } @ev),
        'and cert.self_revoked');
    my $live = $t->sql("SELECT serial FROM certificates WHERE user_id = 'genr0001' AND status = 'issued'");
    chomp $live;
    isnt($live, $old->{serial}, 'a new live certificate');
    $new = $live;
};

subtest 'the user and its master are mailed' => sub {
    my @to_user = grep { $_->{subject} =~ /電子証明書の失効と再発行/ } $t->wait_mails_to(qr/^genr0001\@/, 3);
    is(scalar @to_user, 1, 'one mail to the user');
    like($to_user[0]{body} // '', qr/\Q$old->{serial}\E/, 'naming the revoked certificate');
    my @to_master = grep { $_->{subject} =~ /電子証明書の失効と再発行/ } $t->wait_mails_to(qr/^mast0001\@/, 1);
    is(scalar @to_master, 1, 'one mail to the master');
    like($to_master[0]{body} // '', qr/一般ユーザー（ユーザーID：genr0001）/, 'saying whose');
};

subtest 'the old certificate is refused on the protected path; the new one logs in' => sub {
    my $res;
    for (1 .. 100) {
        $res = $t->get('/app/', cert => 'old-pc', cookies => $old_jar, json => 1);
        last if $res->{status} != 200;
        sleep 0.1;
    }
    is($res->{status}, 401, 'the old session with the old certificate: refused (revocation feed)');
    is(Certgate::Test::json_of($res)->{error}, 'certificate_revoked', 'certificate_revoked');
    my $r = $t->login('genr0001', 'Passw0rd!', cert => 'old-pc');
    is($r->{json}{error}, 'certificate_revoked', 'the old certificate cannot log in again');
    my $d = $t->dir;
    my $crl = $t->request('/certgate/crl');
    Certgate::Test::write_file("$d/crl.der", $crl->{raw_body});
    my ($rc, $out) = Certgate::Test::run('openssl', 'crl', '-inform', 'DER', '-in', "$d/crl.der", '-noout', '-text');
    like($out, qr/Serial Number: \Q$old->{serial}\E/i, 'the CRL lists the old certificate');
};

subtest 'the new certificate logs in' => sub {
    my $jar = $t->jar;
    my $r = $t->login('genr0001', 'Passw0rd!', cert => 'new-pc', jar => $jar);
    ok($r->{json}{ok}, 'the new certificate logs in') or diag $r->{body};
    my $app = $t->get('/app/', cert => 'new-pc', cookies => $jar);
    is($app->{status}, 200, 'and reaches the app');
    is($app->{body}, "app genr0001\n", 'as genr0001');
};

subtest 'certgate_self_revoke off: ④ says already issued, as before' => sub {
    $t->write_conf(conf_with('certgate_self_revoke off;'));
    $t->reload_nginx;
    my $r = $t->submit('/certgate/issue', { user_id => 'genr0001', password => 'Passw0rd!' });
    is($r->{json}{error}, 'already_issued', 'already_issued');
    like($r->{json}{message}, qr/から更新できます/, 'with the renewal date');
    my $bad = $t->dir . '/bad.conf';
    (my $text = Certgate::Test::read_file($t->dir . '/nginx.conf'))
        =~ s/certgate_self_revoke off;/certgate_self_revoke maybe;/ or die 'no directive';
    # Its [emerg] goes to a log of its own, not to the suite's error log.
    $text =~ s{error_log \S+}{error_log $bad.log}g;
    Certgate::Test::write_file($bad, $text);
    my ($code, $out) = Certgate::Test::run(Certgate::Test::nginx_bin(), '-t', '-p', $t->dir,
        '-c', $bad, '-e', "$bad.log");
    isnt($code, 0, 'nginx -t refuses a wrong value');
    like($out, qr/"certgate_self_revoke" directive: expected on or off, not "maybe".*bad\.conf:\d+/,
        'naming the directive, the file and the line');
};

$t->done;
done_testing;
