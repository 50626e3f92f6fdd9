# The .p12's keys derived ahead (issue 18): after ④ answers, a task of the
# crypto pool derives the PKCS#12 keys from the password, so that ⑥ builds
# the .p12 around them. What a clerk and a sysadmin must be able to count on:
# the file opens with the login password exactly as before (openssl, NSS),
# the keys sit in memcached only sealed, only while the flow waits at ⑤/⑥,
# are taken once, and nothing of them stays when the flow ends or is
# cancelled; legacy encryption never derives ahead.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use JSON::PP qw(decode_json);
use Certgate::Test;

sub start_site {
    my (%o) = @_;
    my $t = Certgate::Test->new;
    $t->start_memcached;
    $t->start_smtp;
    my $extra = $o{extra} // '';
    $t->write_conf(<<"EOF", workers => 2);
    %%CERTGATE%%
    certgate_self_revoke off;
    $extra
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location = /metrics { certgate_metrics; }
    }
EOF
    $t->start_nginx;
    $t->add_org('ORG001');
    return $t;
}

sub metric {
    my ($t, $which) = @_;
    my $r = $t->get('/metrics');
    my ($n) = $r->{raw_body} =~ /^certgate_p12_keys_total\{derived="\Q$which\E"\} (\d+)$/m;
    return $n // -1;
}

sub mc_get {
    my ($t, $key) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->memcached_port,
        Proto => 'tcp', Timeout => 5) or die "memcached: $!";
    print $s "get $key\r\n";
    my $line = <$s>;
    return undef if !defined $line || $line =~ /^END/;
    my ($len) = $line =~ /^VALUE \S+ \d+ (\d+)/ or die "memcached: $line";
    my $data = '';
    read($s, $data, $len);
    close $s;
    return $data;
}

sub keys_of_flows { my ($t) = @_; return grep { /^cg:flow:.*:p12keys$/ } $t->memcached_keys }

sub wait_for {
    my ($what, $seconds) = @_;
    my $until = time + $seconds;
    while (time < $until) { return 1 if $what->(); sleep 0.05 }
    return $what->();
}

# ④ for $user; returns the jar once the code mail is there.
sub begin_issuance {
    my ($t, $user, $pw) = @_;
    my $jar = $t->jar;
    my $before = () = grep { ($_->{to} // '') =~ /^\Q$user\E\@/ } $t->decoded_mails;
    my $r = $t->submit('/certgate/issue', { user_id => $user, password => $pw }, jar => $jar);
    die "④: " . ($r->{json}{error} // $r->{status}) unless $r->{json}{ok};
    my $code = $t->code_for($user, $before) // die 'no code mail';
    return ($jar, $code);
}

my $pw = 'Passw0rd!';

{
    my $t = start_site();
    $t->add_user('ORG001', $_, $pw, mail => "$_\@example.test") for qw(ahead001 cancel01 quick001);
    my $d = $t->dir;

    subtest '④ → the keys are derived while the code mail is read; ⑥ uses them' => sub {
        my ($jar, $code) = begin_issuance($t, 'ahead001', $pw);
        ok(wait_for(sub { keys_of_flows($t) == 1 }, 10), 'the flow\'s .p12 keys are in memcached after ④')
            or diag join ' ', $t->memcached_keys;
        my ($key) = keys_of_flows($t);
        my $box = mc_get($t, $key) // '';
        cmp_ok(length $box, '>', 100, 'a sealed value');
        unlike($box, qr/p12keys1|\Q$pw\E/, 'neither the password nor the keys in clear');
        my ($flow_id) = $key =~ /^cg:flow:([^:]+):p12keys$/;
        my $flow = mc_get($t, "cg:flow:$flow_id") // '';
        unlike($flow, qr/p12keys/, 'the flow state itself holds no keys');

        my $ahead = metric($t, 'ahead');
        my $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
        ok($r->{json}{ok}, '⑤ accepted') or diag explain $r->{json};
        my $t0 = time;
        $r = $t->submit('/certgate/issue/confirm', {}, jar => $jar);
        my $took = time - $t0;
        ok($r->{json}{ok}, '⑥ issued') or diag explain $r->{json};
        is(scalar(keys_of_flows($t)), 0, 'the keys were taken: none left in memcached');
        is(metric($t, 'ahead') - $ahead, 1, 'certgate_p12_keys_total{derived="ahead"} counted it');
        note(sprintf '⑥ took %.0f ms', $took * 1000);

        my $res = $t->request($r->{json}{download}, cookies => $jar);
        is($res->{status}, 200, 'downloaded');
        $t->save_p12($res->{raw_body}, 'ahead001', $pw);
        my ($rc, $out) = Certgate::Test::run('openssl', 'pkcs12', '-in', "$d/ahead001.p12", '-passin',
            "pass:$pw", '-info', '-nokeys');
        is($rc, 0, 'openssl opens the .p12 with the login password') or diag $out;
        like($out, qr/MAC: sha256, Iteration 100000/, 'MAC: SHA-256, 100000 iterations');
        like($out, qr/PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256/,
            'bags: PBES2 AES-256-CBC, 100000 iterations');
        like($out, qr/friendlyName: ahead001/, 'friendly name = user ID');
        ($rc, $out) = Certgate::Test::run('openssl', 'pkcs12', '-in', "$d/ahead001.p12", '-passin',
            'pass:Wrong0!pw', '-noout');
        isnt($rc, 0, 'and not with another password');
        mkdir "$d/nssdb";
        Certgate::Test::run('certutil', '-N', '-d', "sql:$d/nssdb", '--empty-password');
        ($rc, $out) = Certgate::Test::run('pk12util', '-i', "$d/ahead001.p12", '-d', "sql:$d/nssdb", '-W', $pw);
        is($rc, 0, 'NSS pk12util imports it') or diag $out;
        my $login = $t->login('ahead001', $pw, cert => 'ahead001');
        ok($login->{json}{ok}, 'and the certificate logs in') or diag explain $login->{json};
    };

    subtest 'キャンセル after ④: nothing of the keys stays' => sub {
        my ($jar) = begin_issuance($t, 'cancel01', $pw);
        ok(wait_for(sub { keys_of_flows($t) == 1 }, 10), 'derived');
        my $r = $t->submit('/certgate/issue/cancel', {}, jar => $jar);
        ok($r->{status} < 400, 'cancelled') or diag explain $r;
        is(scalar(keys_of_flows($t)), 0, 'the keys went with the flow');
    };

    subtest '⑥ pressed before the derivation ended: derived at ⑥, the file the same' => sub {
        # Two issuances in a row; whichever way each one went, each file opens
        # and the two counters add up to the issuances made.
        my ($a0, $i0) = (metric($t, 'ahead'), metric($t, 'at_issuance'));
        my $r = $t->issue_certificate('quick001', $pw);
        ok($r->{ok}, 'issued at once after ⑤') or diag explain $r;
        is((metric($t, 'ahead') - $a0) + (metric($t, 'at_issuance') - $i0), 1, 'counted once');
        ok(wait_for(sub { keys_of_flows($t) == 0 }, 5), 'and no keys left behind, even from a late derivation');
        like(`openssl pkcs12 -in $d/quick001-issued.p12 -passin pass:$pw -info -nokeys 2>&1`,
            qr/Iteration 100000/, 'the file opens with the password');
    };

    my @bad = $t->bad_log_lines;
    is(scalar @bad, 0, 'no alert, crit or emerg in the error log') or diag join '', @bad;
    unlike(Certgate::Test::read_file($t->dir . '/logs/error.log') // '', qr/\Q$pw\E/, 'no password in the log');
    $t->done;
}

{
    my $t = start_site(extra => 'certgate_p12_encryption legacy;');
    $t->add_user('ORG001', 'legacy01', $pw, mail => 'legacy01@example.test');
    subtest 'certgate_p12_encryption legacy: derived at ⑥, never ahead' => sub {
        my ($jar, $code) = begin_issuance($t, 'legacy01', $pw);
        sleep 0.5;
        is(scalar(keys_of_flows($t)), 0, 'no keys derived ahead');
        my $i0 = metric($t, 'at_issuance');
        $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
        my $r = $t->submit('/certgate/issue/confirm', {}, jar => $jar);
        ok($r->{json}{ok}, 'issued') or diag explain $r->{json};
        is(metric($t, 'at_issuance') - $i0, 1, 'counted as derived at issuance');
        my $res = $t->request($r->{json}{download}, cookies => $jar);
        my $f = $t->dir . '/legacy01.p12';
        Certgate::Test::write_file($f, $res->{raw_body});
        like(`openssl pkcs12 -legacy -in $f -passin pass:$pw -info -nokeys 2>&1`, qr/pbeWithSHA1And40BitRC2-CBC/,
            'the legacy file as before');
    };
    $t->done;
}

done_testing;
