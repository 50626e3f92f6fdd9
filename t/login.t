# mTLS login and protected locations (issue 6): certificate + password, a
# session bound to the certificate, the variables for the app, and every way
# a session ends.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use IO::Socket::SSL;
use Time::HiRes qw(sleep time);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
$t->write_conf(<<'EOF', workers => 2);
    %%CERTGATE%%
    certgate_sync_interval 500ms;
    certgate_lockout 6 60m 3;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location / {
            return 200 "user=$http_x_certgate_user org=$http_x_certgate_org role=$http_x_certgate_role serial=$http_x_certgate_serial days=$http_x_certgate_days\n";
        }
    }
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            proxy_set_header X-Certgate-User $certgate_user;
            proxy_set_header X-Certgate-Org $certgate_org;
            proxy_set_header X-Certgate-Role $certgate_role;
            proxy_set_header X-Certgate-Serial $certgate_cert_serial;
            proxy_set_header X-Certgate-Days $certgate_cert_days_left;
            proxy_pass http://127.0.0.1:%%HTTP_PORT%%;
        }
        location /admin/ {
            certgate_require role=master;
            proxy_set_header X-Certgate-User $certgate_user;
            proxy_pass http://127.0.0.1:%%HTTP_PORT%%;
        }
    }
EOF
$t->start_nginx;
my $pw = 'Passw0rd!';
$t->add_org('ORG001');
$t->add_org('ORG002');
$t->add_user('ORG001', 'master01', $pw, master => 1);
$t->add_user('ORG001', $_, $pw) for qw(general1 general2 locked01 blocked1 revoke01 reset001 logout01 expire01 renewin1);
$t->add_user('ORG002', 'otheruser1', $pw);

my %cert;
$cert{$_} = $t->issue_certificate($_, $pw) for qw(master01 general1 general2 locked01 blocked1 revoke01 reset001 logout01 renewin1);
ok($cert{$_}{ok}, "$_ has a certificate") for sort keys %cert;

sub app { my ($name, $jar, %o) = @_; return $t->get($o{path} || '/app/page', cert => $name, cookies => $jar, json => $o{json}) }

subtest 'login passes; the app learns user, org and role' => sub {
    my $jar = $t->jar;
    my $r = $t->login('general1', $pw, cert => $cert{general1}{name}, jar => $jar);
    ok($r->{json}{ok}, 'login with the right certificate and password');
    is($r->{json}{next}, '/', 'next: /');
    like(join(' ', @{$r->{header_list}{'set-cookie'} || []}),
        qr/__Host-certgate_session=[^;]+; Path=\/; Secure; HttpOnly; SameSite=Strict/, 'session cookie: __Host-, Secure, HttpOnly, SameSite=Strict');
    my $a = app($cert{general1}{name}, $jar);
    is($a->{status}, 200, 'the protected location answers');
    like($a->{body}, qr/user=general1 org=ORG001 role=general serial=\Q$cert{general1}{serial}\E days=36[56]/,
        'the upstream got user, org, role, serial and days left');
};

subtest 'without a session: the login screen, and back after login' => sub {
    my $jar = $t->jar;
    my $a = app($cert{general2}{name}, $jar, path => '/app/report?month=11');
    is($a->{status}, 302, 'a browser is sent to the login screen');
    like($a->{headers}{location}, qr{/certgate/\?return=%2Fapp%2Freport%3Fmonth%3D11$}, 'with the page it asked for');
    my $j = app($cert{general2}{name}, $jar, json => 1);
    is($j->{status}, 401, 'a JSON client gets 401');
    like($j->{body}, qr/"error":"login_required"/, 'error login_required');
    my $screen = $t->get('/certgate/?return=%2Fapp%2Freport%3Fmonth%3D11', cookies => $jar);
    like($screen->{body}, qr{name="return" value="/app/report\?month=11"}, 'the login form carries it');
    my $r = $t->login('general2', $pw, cert => $cert{general2}{name}, jar => $jar, return => '/app/report?month=11');
    is($r->{json}{next}, '/app/report?month=11', 'after login: back to that page');
    $r = $t->login('general2', $pw, cert => $cert{general2}{name}, return => 'https://evil.example/');
    is($r->{json}{next}, '/', 'never to another site');
};

subtest 'each refusal says why' => sub {
    my $r = $t->login('general1', $pw);
    is($r->{json}{error}, 'no_certificate', 'no certificate: no_certificate');
    like($r->{json}{message}, qr/開いているブラウザをすべて閉じ/, 'with the hint of the manual');
    my $html = $t->submit('/certgate/login', { user_id => 'general1', password => $pw }, html => 1);
    like($html->{body}, qr/誤って違う電子証明書を選択してしまった場合/, 'the page shows the hint too');

    $r = $t->login('general1', $pw, cert => $cert{general2}{name});
    is($r->{json}{error}, 'certificate_mismatch', "another user's certificate: certificate_mismatch");
    like($r->{json}{message}, qr/別のユーザー（general2）/, 'names whose certificate it is');

    $t->client_cert('general1', ca => 'other', name => 'foreign');
    $r = $t->login('general1', $pw, cert => 'foreign');
    is($r->{json}{error}, 'certificate_mismatch', 'a certificate of another CA: certificate_mismatch');

    $r = $t->login('general1', 'Wrong0!pw', cert => $cert{general1}{name});
    is($r->{json}{error}, 'bad_credentials', 'wrong password: bad_credentials');

    $t->login('locked01', 'Wrong0!pw', cert => $cert{locked01}{name}) for 1 .. 6;
    $r = $t->login('locked01', $pw, cert => $cert{locked01}{name});
    is($r->{json}{error}, 'locked', 'locked: locked (the lockout counters apply)');

    $t->certgatectl('user', 'block', 'blocked1');
    $r = $t->login('blocked1', $pw, cert => $cert{blocked1}{name});
    is($r->{json}{error}, 'blocked', 'blocked: blocked');

    $t->certgatectl('cert', 'revoke', $cert{revoke01}{serial}, '--reason', 'keyCompromise');
    $r = $t->login('revoke01', $pw, cert => $cert{revoke01}{name});
    is($r->{json}{error}, 'certificate_revoked', 'revoked: certificate_revoked');
    $html = $t->submit('/certgate/login', { user_id => 'revoke01', password => $pw }, html => 1, cert => $cert{revoke01}{name});
    like($html->{body}, qr{href="/certgate/issue"}, 'with a link to issuance');
};

subtest 'the session is bound to its certificate' => sub {
    my $jar = $t->jar;
    ok($t->login('general1', $pw, cert => $cert{general1}{name}, jar => $jar)->{json}{ok}, 'logged in');
    my $a = app($cert{general2}{name}, $jar, json => 1);
    is($a->{status}, 401, "with another user's certificate: refused");
    like($a->{body}, qr/certificate_mismatch/, 'certificate_mismatch');
    $a = app(undef, $jar, json => 1);
    is($a->{status}, 401, 'without a certificate: refused');
    like($a->{body}, qr/no_certificate/, 'no_certificate');
    $a = app($cert{general1}{name}, $jar);
    is($a->{status}, 200, 'with its own certificate: passes');
};

subtest 'logout ends the session' => sub {
    my $jar = $t->jar;
    ok($t->login('logout01', $pw, cert => $cert{logout01}{name}, jar => $jar)->{json}{ok}, 'logged in');
    my $stolen = Certgate::Test::read_file($jar);
    is(app($cert{logout01}{name}, $jar)->{status}, 200, 'passes');
    my $r = $t->submit('/certgate/logout', {}, jar => $jar, cert => $cert{logout01}{name});
    ok($r->{json}{ok}, 'logout');
    is(app($cert{logout01}{name}, $jar, json => 1)->{status}, 401, 'the browser is logged out');
    # The old cookie, replayed, dies too (every worker, through the feed).
    my $copy = $t->dir . '/stolen.txt';
    Certgate::Test::write_file($copy, $stolen);
    my $dead = 0;
    for (1 .. 30) {
        my $n = grep { app($cert{logout01}{name}, $copy, json => 1)->{status} == 401 } 1 .. 4;
        if ($n == 4) { $dead = 1; last }
        sleep 0.1;
    }
    ok($dead, 'a replayed cookie of the ended session is refused on every worker');
};

sub ends_within_3s {
    my ($user, $action, $what) = @_;
    my $jar = $t->jar;
    ok($t->login($user, $pw, cert => $cert{$user}{name}, jar => $jar)->{json}{ok}, "$user logged in");
    is(app($cert{$user}{name}, $jar)->{status}, 200, 'passes');
    $action->();
    # When the first of four refusals in a row was asked: that is when the
    # session had ended everywhere, however long the asking took on a busy
    # machine. Asked for up to 10 s so a slow poll shows its real figure.
    my $start = time;
    my $ended_at;
    while (time - $start < 10) {
        my $asked = time;
        my $n = grep { app($cert{$user}{name}, $jar, json => 1)->{status} == 401 } 1 .. 4;
        if ($n == 4) { $ended_at = $asked; last }
        sleep 0.2;
    }
    ok(defined $ended_at && $ended_at - $start <= 3,
        sprintf('%s ends the session on both workers within 3 s (%s), no reload', $what,
            defined $ended_at ? sprintf('%.1f s', $ended_at - $start) : 'not in 10 s'));
}

subtest 'revocation and reset end sessions without reload' => sub {
    $t->add_user('ORG001', 'revoke02', $pw);
    $cert{revoke02} = $t->issue_certificate('revoke02', $pw);
    ends_within_3s('revoke02', sub { $t->certgatectl('cert', 'revoke', $cert{revoke02}{serial}, '--reason', 'keyCompromise') }, 'certgatectl cert revoke');
    ends_within_3s('reset001', sub { $t->certgatectl('user', 'reset', 'reset001') }, 'certgatectl user reset');
    $t->add_user('ORG001', 'block002', $pw);
    $cert{block002} = $t->issue_certificate('block002', $pw);
    ends_within_3s('block002', sub { $t->certgatectl('user', 'block', 'block002') }, 'certgatectl user block');
    $t->certgatectl('user', 'unblock', 'block002');
    my $jar = $t->jar;
    ok($t->login('block002', $pw, cert => $cert{block002}{name}, jar => $jar)->{json}{ok}, 'unblocked: logs in again');
    is(app($cert{block002}{name}, $jar)->{status}, 200, 'and the new session passes at once');
};

# One keep-alive TLS connection presenting certificate $name with the session
# cookie of $jar; returns a function that asks GET /app/x on it: (status, body).
sub keepalive {
    my ($name, $jar) = @_;
    my ($cookie) = Certgate::Test::read_file($jar) =~ /__Host-certgate_session\t(\S+)/;
    my $sock = IO::Socket::SSL->new(
        PeerAddr => '127.0.0.1', PeerPort => $t->port('https'),
        SSL_ca_file => $t->dir . '/ca.crt', SSL_cert_file => $t->dir . "/$name.crt",
        SSL_key_file => $t->dir . "/$name.key", SSL_verifycn_name => 'localhost',
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

subtest 'an expired certificate is refused on an open keepalive connection' => sub {
    my $name = $t->client_cert_until('expire01', time + 5, store_user => 'expire01');
    my $jar = $t->jar;
    ok($t->login('expire01', $pw, cert => $name, jar => $jar)->{json}{ok}, 'logged in with a certificate valid for seconds');
    my $ask = keepalive($name, $jar);
    my ($s1) = $ask->();
    is($s1, 200, 'first request on the connection passes');
    sleep 6;
    my ($s2, $b2) = $ask->();
    is($s2, 401, 'after expiry, the same connection is refused');
    like($b2, qr/certificate_expired/, 'certificate_expired');
};

# A connection that has passed keeps its verdict only while the revocation
# set is unchanged: each of these reaches it within 3 s.
subtest 'revoke, reset and block reach an open keep-alive connection' => sub {
    my @cases = (
        ['revoke03', sub { $t->certgatectl('cert', 'revoke', $_[0], '--reason', 'keyCompromise') }, 'certificate_revoked'],
        ['reset003', sub { $t->certgatectl('user', 'reset', 'reset003') }, 'login_required'],
        ['block003', sub { $t->certgatectl('user', 'block', 'block003') }, 'login_required'],
    );
    for my $case (@cases) {
        my ($user, $action, $error) = @$case;
        $t->add_user('ORG001', $user, $pw);
        my $c = $t->issue_certificate($user, $pw);
        my $jar = $t->jar;
        ok($t->login($user, $pw, cert => $c->{name}, jar => $jar)->{json}{ok}, "$user logged in");
        my $ask = keepalive($c->{name}, $jar);
        is(($ask->())[0], 200, "$user: the connection passes") for 1 .. 3;
        my ($rc, $out) = $action->($c->{serial});
        is($rc, 0, "$user: certgatectl done") or diag $out;
        my $start = time;
        my ($status, $body, $asked) = (200, '');
        while (time - $start < 10) {
            $asked = time;
            ($status, $body) = $ask->();
            last if $status != 200;
            sleep 0.1;
        }
        is($status, 401, "$user: the same connection is refused");
        cmp_ok($asked - $start, '<=', 3, sprintf('%s: within 3 s (%.1f s)', $user, $asked - $start));
        like($body, qr/"error":"$error"/, "$user: $error");
    }
};

subtest 'role=master' => sub {
    my $mjar = $t->jar;
    ok($t->login('master01', $pw, cert => $cert{master01}{name}, jar => $mjar)->{json}{ok}, 'master logs in');
    my $a = app($cert{master01}{name}, $mjar, path => '/admin/x');
    is($a->{status}, 200, 'a master user passes role=master');
    my $gjar = $t->jar;
    $t->login('general1', $pw, cert => $cert{general1}{name}, jar => $gjar);
    $a = app($cert{general1}{name}, $gjar, path => '/admin/x');
    is($a->{status}, 403, 'a general user is refused (403)');
};

subtest 'inside the renewal window: login passes with a notice' => sub {
    $t->sql("UPDATE certificates SET not_after = " . (int(time) + 20 * 86400)
        . " WHERE serial = '$cert{renewin1}{serial}'");
    my $r = $t->login('renewin1', $pw, cert => $cert{renewin1}{name});
    ok($r->{json}{ok}, 'login passes');
    ok($r->{json}{renewal}{expires}, "JSON names the expiry ($r->{json}{renewal}{expires})");
    my $html = $t->submit('/certgate/login', { user_id => 'renewin1', password => $pw }, html => 1, cert => $cert{renewin1}{name});
    like($html->{body}, qr{電子証明書の更新のお知らせ}, 'the page gives the notice');
    like($html->{body}, qr{href="/certgate/issue"}, 'with a link to renew');
};

$t->done;
done_testing;
