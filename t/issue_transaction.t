# Issuance as one transaction the user can finish (issues 13.5, 12.5, 13.6):
# a certificate recorded at ⑥ goes live only when its .p12 is downloaded; a
# fault on the way (memcached gone, the worker killed) leaves nothing live and
# lets the user press 発行 again; a renewal's old certificate and its sessions
# end at the hand-over; the .p12 carries the configured PBKDF2 iterations.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use IO::Socket::SSL;
use POSIX ();
use Time::HiRes qw(sleep time);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
mkdir $t->dir . '/app';
Certgate::Test::write_file($t->dir . '/app/x', "business app\n");
$t->write_conf(<<'EOF');
    %%CERTGATE%%
    certgate_sync_interval 500ms;
    certgate_p12_iterations 120000;
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            root %%DIR%%;
        }
    }
EOF
$t->start_nginx;
$t->add_org('ORG001');
my $pw = 'Passw0rd!';
$t->add_user('ORG001', $_, $pw) for qw(mcdown01 killed01 killed02 lnkgone1 renew001 sweep001 p12iter1);
my $d = $t->dir;

sub certs_of {
    my ($user) = @_;
    my $out = $t->sql("SELECT serial || ' ' || status FROM certificates WHERE user_id = '$user' ORDER BY issued_at, serial");
    return map { [split / /] } split /\n/, $out;
}

sub live_count {
    my ($user) = @_;
    return scalar grep { $_->[1] eq 'issued' } certs_of($user);
}

# ④ and ⑤ for $user in $jar; ⑥ is left to the caller.
sub up_to_confirm {
    my ($user, $jar) = @_;
    my $before = () = grep { ($_->{to} // '') =~ /^\Q$user\E\@/ } $t->decoded_mails;
    my $r = $t->submit('/certgate/issue', { user_id => $user, password => $pw }, jar => $jar);
    return $r unless $r->{json}{ok};
    my $code = $t->code_for($user, $before);
    return $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
}

# ⑥ in the background (a forked curl): returns a function that waits for
# the answer and gives it.
sub confirm_in_background {
    my ($jar, $query) = @_;
    my $token = Certgate::Test::json_of($t->get('/certgate/', json => 1, cookies => $jar))->{csrf_token};
    my $out = "$d/bg-" . int(rand(1e9)) . '.txt';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $r = $t->request("/certgate/issue/confirm?$query", method => 'POST', json => 1,
            cookies => $jar, body => { csrf_token => $token });
        Certgate::Test::write_file($out, "$r->{status}\n$r->{body}");
        POSIX::_exit(0);
    }
    return sub {
        waitpid($pid, 0);
        my ($status, $body) = split /\n/, Certgate::Test::read_file($out) // "0\n", 2;
        return { status => $status, body => $body // '', json => Certgate::Test::json_of({ body => $body // '' }) };
    };
}

sub worker_pids {
    my $master = Certgate::Test::read_file("$d/nginx.pid");
    chomp $master;
    my @pids = grep { /^\d+$/ } split /\s+/, `pgrep -P $master`;
    return @pids;
}

sub download {
    my ($jar, $path, $name) = @_;
    my $res = $t->request($path, cookies => $jar);
    return $res unless $res->{status} == 200;
    Certgate::Test::write_file("$d/$name.p12", $res->{raw_body});
    Certgate::Test::run('openssl', 'pkcs12', '-in', "$d/$name.p12", '-passin', "pass:$pw", '-nodes',
        '-clcerts', '-out', "$d/$name.pem");
    Certgate::Test::run('openssl', 'x509', '-in', "$d/$name.pem", '-out', "$d/$name.crt");
    Certgate::Test::run('openssl', 'pkey', '-in', "$d/$name.pem", '-out', "$d/$name.key");
    return $res;
}

subtest 'memcached dies between recording and hand-over: nothing live, a retry issues one' => sub {
    my $jar = $t->jar;
    ok(up_to_confirm('mcdown01', $jar)->{json}{ok}, '④ ⑤');
    my $wait = confirm_in_background($jar, 'handover_delay_ms=1500');
    sleep 0.7;
    $t->stop_memcached;
    my $r = $wait->();
    isnt($r->{status}, 200, "⑥ does not answer ok ($r->{status})");
    like($r->{body}, qr/"error":"unavailable"/, 'it says the service is unavailable (try again)');
    my @certs = certs_of('mcdown01');
    is(live_count('mcdown01'), 0, 'no certificate of the user is live') or diag explain \@certs;
    ok((grep { $_->[1] eq 'revoked' } @certs) == @certs, 'what was recorded is revoked') or diag explain \@certs;
    my @abandoned = grep { $_->{kind} eq 'cert.abandoned' } $t->audit;
    ok(@abandoned >= 1, 'with a cert.abandoned event saying why') and like($abandoned[-1]{detail}, qr/why=/, 'the reason');

    $t->start_memcached;
    my $jar2 = $t->jar;
    my $a = up_to_confirm('mcdown01', $jar2);
    ok($a->{json}{ok}, '④ again: not already_issued') or diag explain $a->{json};
    my $c = $t->submit('/certgate/issue/confirm', {}, jar => $jar2);
    ok($c->{json}{ok}, '⑥ again issues') or diag explain $c->{json};
    is(live_count('mcdown01'), 0, 'not live before the download');
    my $g = download($jar2, $c->{json}{download}, 'mcdown01-2');
    is($g->{status}, 200, 'the .p12 downloads');
    is(live_count('mcdown01'), 1, 'exactly one certificate is live');
    ok($t->login('mcdown01', $pw, cert => 'mcdown01-2')->{json}{ok}, 'and it logs in');
};

subtest 'the worker is killed during key generation: ⑦ says retry, the retry works' => sub {
    my $jar = $t->jar;
    ok(up_to_confirm('killed01', $jar)->{json}{ok}, '④ ⑤');
    my @before = worker_pids();
    my $wait = confirm_in_background($jar, 'keygen_delay_ms=3000');
    my $p;
    for (1 .. 40) {
        $p = $t->get('/certgate/issue/confirm', json => 1, cookies => $jar);
        last if $p->{body} =~ /"step":"issuing"/;
        sleep 0.05;
    }
    like($p->{body}, qr/"step":"issuing"/, '⑦ shows issuing');
    kill 'KILL', @before;
    $wait->();
    my @after;
    for (1 .. 50) {
        @after = worker_pids();
        last if @after && !grep { my $o = $_; grep { $_ == $o } @before } @after;
        sleep 0.1;
    }
    my $start = time;
    $p = $t->get('/certgate/issue/confirm', json => 1, cookies => $jar);
    like($p->{body}, qr/"error":"unavailable".*"retry":true/, '⑦ now says it failed and may be retried')
        or diag $p->{body};
    cmp_ok(time - $start, '<', 5, 'at once, not when the flow expires');
    my $html = $t->get('/certgate/issue/confirm', cookies => $jar);
    like($html->{body}, qr/もう一度「発行」ボタンを押してください/, 'the page asks to press 発行 again');
    my $c = $t->submit('/certgate/issue/confirm', {}, jar => $jar);
    ok($c->{json}{ok}, '発行 again, in the same flow') or diag explain $c->{json};
    is(download($jar, $c->{json}{download} // '', 'killed01-2')->{status}, 200, 'the .p12 downloads');
    is(live_count('killed01'), 1, 'one certificate is live');
    ok($t->login('killed01', $pw, cert => 'killed01-2')->{json}{ok}, 'and it logs in');
};

subtest 'the worker is killed after recording, before the hand-over: the retry revokes the stranded one' => sub {
    my $jar = $t->jar;
    ok(up_to_confirm('killed02', $jar)->{json}{ok}, '④ ⑤');
    my @before = worker_pids();
    my $wait = confirm_in_background($jar, 'handover_delay_ms=3000');
    # Key and signature first (seconds on a loaded machine), then the record;
    # the hand-over waits 3 s after it, so the kill lands in that window.
    my @certs;
    my $t0 = time;
    while (time - $t0 < 20) {
        @certs = certs_of('killed02');
        last if @certs;
        sleep 0.05;
    }
    is($certs[0][1] // '', 'pending', 'recorded pending');
    kill 'KILL', @before;
    $wait->();
    for (1 .. 50) {
        my @after = worker_pids();
        last if @after && !grep { my $o = $_; grep { $_ == $o } @before } @after;
        sleep 0.1;
    }
    my $p = $t->get('/certgate/issue/confirm', json => 1, cookies => $jar);
    like($p->{body}, qr/"retry":true/, '⑦ says retry') or diag $p->{body};
    my $r = $t->submit('/certgate/issue', { user_id => 'killed02', password => $pw });
    ok($r->{json}{ok}, '④ is not "already issued" meanwhile') or diag explain $r->{json};
    my $c = $t->submit('/certgate/issue/confirm', {}, jar => $jar);
    ok($c->{json}{ok}, '発行 again');
    is(download($jar, $c->{json}{download} // '', 'killed02-2')->{status}, 200, 'the .p12 downloads');
    my %status = map { $_->[0] => $_->[1] } certs_of('killed02');
    is($status{$certs[0][0]}, 'revoked', 'the stranded certificate is revoked');
    is(live_count('killed02'), 1, 'one certificate is live');
    my @ab = grep { $_->{kind} eq 'cert.abandoned' && $_->{subject} eq $certs[0][0] } $t->audit;
    like($ab[0]{detail} // '', qr/why=a new issuance began/, 'cert.abandoned says why');
};

subtest 'a pending certificate never logs in; the sweep revokes it after the flow lifetime' => sub {
    my $jar = $t->jar;
    ok(up_to_confirm('sweep001', $jar)->{json}{ok}, '④ ⑤');
    my $c = $t->submit('/certgate/issue/confirm', {}, jar => $jar);
    ok($c->{json}{ok}, '⑥');
    my ($cert) = certs_of('sweep001');
    is($cert->[1], 'pending', 'recorded pending, not live');
    my $r = $t->submit('/certgate/issue', { user_id => 'sweep001', password => $pw });
    ok($r->{json}{ok}, '④ is open: a pending certificate is not "already issued"') or diag explain $r->{json};
    # Aged past the flow's lifetime (30 min code + 30 min): the sweep takes it.
    $t->sql("UPDATE certificates SET issued_at = issued_at - 7200 WHERE serial = '$cert->[0]'");
    my $status;
    for (1 .. 50) {
        ($status) = $t->sql("SELECT status FROM certificates WHERE serial = '$cert->[0]'") =~ /(\w+)/;
        last if $status eq 'revoked';
        sleep 0.1;
    }
    is($status, 'revoked', 'revoked by the sweep');
    my @ab = grep { $_->{kind} eq 'cert.abandoned' && $_->{subject} eq $cert->[0] } $t->audit;
    like($ab[0]{detail} // '', qr/not downloaded/, 'the audit trail says why');
    my $g = $t->get($c->{json}{download}, cookies => $jar);
    isnt($g->{status}, 200, 'and its .p12 is no longer handed over');
};

subtest 'the download link expired before the download: ⑧ goes back to ⑥, the retry works' => sub {
    my $jar = $t->jar;
    ok(up_to_confirm('lnkgone1', $jar)->{json}{ok}, '④ ⑤');
    my $c = $t->submit('/certgate/issue/confirm', {}, jar => $jar);
    ok($c->{json}{ok}, '⑥');
    my ($token) = $c->{json}{download} =~ m{([^/]+)$};
    # memcached forgets the .p12 (its 5 minutes are over, or it restarted).
    my $mc = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port('memcached')) or die;
    print $mc "delete cg:dl:$token\r\n";
    my $reply = <$mc>;
    like($reply, qr/DELETED/, 'the .p12 is gone from memcached');
    my ($first) = certs_of('lnkgone1');
    my $p = $t->get('/certgate/issue/confirm', json => 1, cookies => $jar);
    like($p->{body}, qr/"retry":true/, '⑧ says issue again') or diag $p->{body};
    my %status = map { $_->[0] => $_->[1] } certs_of('lnkgone1');
    is($status{$first->[0]}, 'revoked', 'the certificate never handed over is revoked');
    $c = $t->submit('/certgate/issue/confirm', {}, jar => $jar);
    ok($c->{json}{ok}, '発行 again, in the same flow');
    is(download($jar, $c->{json}{download} // '', 'lnkgone1-2')->{status}, 200, 'the .p12 downloads');
    is(live_count('lnkgone1'), 1, 'one certificate is live');
    $p = $t->get('/certgate/issue/confirm', json => 1, cookies => $jar);
    like($p->{body}, qr/"ok":true/, 'after the download, ⑧ stays ⑧');
    unlike($p->{body}, qr/retry/, 'with nothing to retry');
};

# One keep-alive TLS connection presenting certificate $name with the session
# cookie of $jar; returns a function that asks GET /app/x on it: (status, body).
sub keepalive {
    my ($name, $jar) = @_;
    my ($cookie) = Certgate::Test::read_file($jar) =~ /__Host-certgate_session\t(\S+)/;
    my $sock = IO::Socket::SSL->new(
        PeerAddr => '127.0.0.1', PeerPort => $t->port('https'),
        SSL_ca_file => "$d/ca.crt", SSL_cert_file => "$d/$name.crt",
        SSL_key_file => "$d/$name.key", SSL_verifycn_name => 'localhost',
    ) or die "connect: $SSL_ERROR";
    return sub {
        local $SIG{PIPE} = 'IGNORE';
        print $sock "GET /app/x HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nCookie: __Host-certgate_session=$cookie\r\n\r\n";
        my ($head, $len) = ('', 0);
        while (my $line = <$sock>) { $head .= $line; last if $line eq "\r\n" }
        ($len) = $head =~ /Content-Length: (\d+)/i;
        my $body = '';
        read($sock, $body, $len) if $len;
        my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
        return ($status // 0, $body);
    };
}

subtest 'renewal: the old certificate and its sessions end at the hand-over' => sub {
    my $first = $t->issue_certificate('renew001', $pw);
    ok($first->{ok}, 'first certificate');
    $t->sql("UPDATE certificates SET not_after = " . (int(time) + 20 * 86400) . " WHERE serial = '$first->{serial}'");
    my $jar = $t->jar;
    ok($t->login('renew001', $pw, cert => $first->{name}, jar => $jar)->{json}{ok}, 'a session with the old certificate');
    my $ask = keepalive($first->{name}, $jar);
    is(($ask->())[0], 200, 'it passes on an open keep-alive connection');

    my $rjar = $t->jar;
    ok(up_to_confirm('renew001', $rjar)->{json}{ok}, 'renewal: ④ ⑤');
    my $c = $t->submit('/certgate/issue/confirm', {}, jar => $rjar);
    ok($c->{json}{ok}, '⑥');
    is((grep { $_->[0] eq $first->{serial} } certs_of('renew001'))[0][1], 'issued',
        'until the download, the old certificate stays live');
    is($t->get('/app/x', cert => $first->{name}, cookies => $jar, json => 1)->{status}, 200,
        'and its session passes');
    is(download($rjar, $c->{json}{download}, 'renew001-new')->{status}, 200, 'the new .p12 downloads');
    is((grep { $_->[0] eq $first->{serial} } certs_of('renew001'))[0][1], 'superseded',
        'now the old certificate is superseded');

    my $start = time;
    my ($fresh, $open, $asked) = (200, 200);
    my $body = '';
    while (time - $start < 10) {
        $asked = time;
        $fresh = $t->get('/app/x', cert => $first->{name}, cookies => $jar, json => 1)->{status};
        ($open, $body) = $ask->();
        last if $fresh != 200 && $open != 200;
        sleep 0.1;
    }
    is($fresh, 401, 'the old certificate + its session: refused on a new connection');
    is($open, 401, 'and on the open keep-alive connection');
    like($body, qr/certificate_revoked/, 'as certificate_revoked');
    cmp_ok($asked - $start, '<=', 1.5, sprintf('within the feed interval (%.1f s)', $asked - $start));
    ok($t->login('renew001', $pw, cert => 'renew001-new')->{json}{ok}, 'the new certificate logs in');
    is(live_count('renew001'), 1, 'one certificate is live');
};

subtest 'the .p12 carries the configured PBKDF2 iterations' => sub {
    my $c = $t->issue_certificate('p12iter1', $pw);
    ok($c->{ok}, 'issued');
    my ($rc, $out) = Certgate::Test::run('openssl', 'pkcs12', '-in', $c->{p12}, '-passin', "pass:$pw", '-info', '-noout');
    is($rc, 0, 'openssl pkcs12 -info') or diag $out;
    like($out, qr/MAC: sha256, Iteration 120000/, 'MAC: SHA-256, 120000 iterations');
    like($out, qr/PBES2, PBKDF2, AES-256-CBC, Iteration 120000, PRF hmacWithSHA256/, 'key and certificates: PBKDF2-SHA256, 120000 iterations, AES-256-CBC');
    unlike($out, qr/Iteration 2048/, 'nothing left at 2048');
};

subtest 'nginx -t refuses too few iterations' => sub {
    my $conf = Certgate::Test::read_file("$d/nginx.conf");
    $conf =~ s/certgate_p12_iterations 120000;/certgate_p12_iterations 2048;/ or die;
    Certgate::Test::write_file("$d/low.conf", $conf);
    my ($rc, $out) = $t->nginx_t("$d/low.conf");
    $out .= Certgate::Test::read_file("$d/logs/error-t.log") // '';
    isnt($rc, 0, 'nginx -t fails');
    like($out, qr/"certgate_p12_iterations" directive is below the floor of 10000 iterations.* in \S+low\.conf:\d+/, 'naming the floor, the file and the line') or diag $out;
    unlink "$d/logs/error-t.log";
};

$t->done(allow => qr/exited on signal 9/);
done_testing;
