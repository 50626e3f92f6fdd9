# The revocation zone holds only what is still needed (issue 12). One user
# who logs in and out until a small zone would fill does not lock everybody
# else out; ended sessions leave the zone once they would have expired anyway,
# revoked serials once their certificate's notAfter passed; a zone that filled
# up fails closed and recovers by itself once entries age out, or at once on
# a reload with a larger certgate_revocation_zone.
#
# The bulk of the logouts and revocations is written straight into the
# store's event table (what the zone is fed from), as a thousand real logins
# would, in a fraction of the time.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $conf = sub {
    my ($zone) = @_;
    return <<"EOF";
    %%CERTGATE%%
    certgate_sync_interval 200ms;
    certgate_session_timeout 5s 5s;
    certgate_revocation_zone $zone;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location / { return 200 "user=\$http_x_certgate_user\\n"; }
    }
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            proxy_set_header X-Certgate-User \$certgate_user;
            proxy_pass http://127.0.0.1:%%HTTP_PORT%%;
        }
    }
EOF
};
$t->write_conf($conf->('64k'), workers => 2);
$t->start_nginx;
my $pw = 'Passw0rd!';
$t->add_org('ORG001');
for my $u (qw(churn001 steady01 revoke01)) {
    $t->add_user('ORG001', $u, $pw);
    $t->client_cert($u, org => 'Org ORG001');
    $t->certgatectl('cert', 'import', $t->dir . "/$u.crt", '--user', $u);
}

sub app {
    my ($user, $jar) = @_;
    return $t->get('/app/x', cert => $user, cookies => $jar, json => 1)->{status};
}

# A fresh login of the steady user (sessions last 5 s here), then its status.
sub steady {
    my $jar = $t->jar;
    my $r = $t->login('steady01', $pw, cert => 'steady01', jar => $jar);
    return $r->{json}{error} // 'no answer' unless $r->{json}{ok};
    return app('steady01', $jar);
}

# Polls until $cond->() holds (at most $secs seconds).
sub eventually {
    my ($secs, $cond) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.2;
    }
    return $cond->();
}

# $n logouts of churn001's sessions, as the portal writes them.
sub bulk_logouts {
    my ($n, $tag) = @_;
    $t->sql(<<"SQL");
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $n)
INSERT INTO events (at, actor, kind, subject, detail)
SELECT strftime('%s', 'now'), 'churn001', 'session.logout', 'churn001',
       'session=' || printf('$tag%026d', i) || ' client=127.0.0.1' FROM n;
SQL
}

# $n revoked certificates of churn001 valid for $secs more seconds, each with
# its cert.revoked event.
sub bulk_revocations {
    my ($n, $tag, $secs) = @_;
    $t->sql(<<"SQL");
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $n)
INSERT INTO certificates (serial, user_id, not_before, not_after, status, issued_at, revoked_at, reason)
SELECT printf('$tag%031X', i), 'churn001', strftime('%s', 'now') - 60, strftime('%s', 'now') + $secs,
       'revoked', strftime('%s', 'now') - 60, strftime('%s', 'now'), 'keyCompromise' FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $n)
INSERT INTO events (at, actor, kind, subject, detail)
SELECT strftime('%s', 'now'), 'operator:test', 'cert.revoked', printf('$tag%031X', i),
       'reason=keyCompromise' FROM n;
SQL
}

is(steady(), 200, 'steady01 passes');

subtest 'one user who logs in and out a thousand times locks nobody else out' => sub {
    for my $i (1 .. 5) {
        my $jar = $t->jar;
        ok($t->login('churn001', $pw, cert => 'churn001', jar => $jar)->{json}{ok}, "churn001 logs in ($i)");
        ok($t->submit('/certgate/logout', {}, jar => $jar, cert => 'churn001')->{json}{ok}, 'and out');
    }
    bulk_logouts(1000, 'A');
    ok(eventually(5, sub { $t->error_log =~ /revocation zone is full of logouts/ }),
        'the zone fills with logouts: a [warn] says so')
        or diag(join "\n", grep { /revocation zone/ } split /\n/, $t->error_log);
    is(steady(), 200, 'another user still passes');

    # While logouts are kept per user, a logout ends the user's other sessions too.
    my ($x, $y) = ($t->jar, $t->jar);
    ok($t->login('churn001', $pw, cert => 'churn001', jar => $x)->{json}{ok}, 'churn001 logs in on X');
    ok($t->login('churn001', $pw, cert => 'churn001', jar => $y)->{json}{ok}, 'and on Y');
    my $stolen = $t->dir . '/stolen.txt';
    Certgate::Test::write_file($stolen, Certgate::Test::read_file($x));
    ok($t->submit('/certgate/logout', {}, jar => $x, cert => 'churn001')->{json}{ok}, 'logout on X');
    ok(eventually(3, sub { 4 == grep { app('churn001', $stolen) == 401 } 1 .. 4 }),
        "X's replayed cookie is refused on every worker");
    is(app('churn001', $y), 401, 'so is Y (the logout was kept for the user)');
};

subtest 'ended sessions leave the zone once they would have expired' => sub {
    ok(eventually(12, sub { $t->error_log =~ /keeps logouts per session again/ || do {
                # A logout that fits again is kept per session (and says so).
                my $j = $t->jar;
                $t->login('churn001', $pw, cert => 'churn001', jar => $j);
                $t->submit('/certgate/logout', {}, jar => $j, cert => 'churn001');
                0;
            } }), 'a [notice] says logouts are kept per session again')
        or diag(join "\n", grep { /revocation zone/ } split /\n/, $t->error_log);
    my ($x, $y) = ($t->jar, $t->jar);
    ok($t->login('churn001', $pw, cert => 'churn001', jar => $x)->{json}{ok}, 'churn001 logs in on X');
    ok($t->login('churn001', $pw, cert => 'churn001', jar => $y)->{json}{ok}, 'and on Y');
    my $stolen = $t->dir . '/stolen2.txt';
    Certgate::Test::write_file($stolen, Certgate::Test::read_file($x));
    ok($t->submit('/certgate/logout', {}, jar => $x, cert => 'churn001')->{json}{ok}, 'logout on X');
    ok(eventually(3, sub { 4 == grep { app('churn001', $stolen) == 401 } 1 .. 4 }),
        "X's replayed cookie is refused on every worker");
    is(app('churn001', $y), 200, 'Y lives on: the logout ended only its own session');
};

subtest 'a full zone fails closed and recovers when the entries age out' => sub {
    bulk_revocations(1000, '1', 4);
    ok(eventually(5, sub { $t->error_log =~ /\[error\].*revocation zone is full \(/ }),
        'the zone fills with revocations: an [error] says so');
    my $s = steady();
    is($s, 503, 'fail closed: a protected location answers 503');
    ok(eventually(15, sub { $t->error_log =~ /\[notice\].*revocation zone has room again/ }),
        'once the certificates expired, a [notice] says the zone has room again')
        or diag(join "\n", grep { /revocation zone/ } split /\n/, $t->error_log);
    is(steady(), 200, 'and a user passes again');
};

subtest 'a revocation still reaches the set' => sub {
    my $jar = $t->jar;
    ok($t->login('revoke01', $pw, cert => 'revoke01', jar => $jar)->{json}{ok}, 'revoke01 logs in');
    is(app('revoke01', $jar), 200, 'passes');
    my $serial = `openssl x509 -noout -serial -in @{[$t->dir]}/revoke01.crt`;
    $serial =~ s/^serial=//;
    chomp $serial;
    $t->certgatectl('cert', 'revoke', $serial, '--reason', 'keyCompromise');
    ok(eventually(3, sub { app('revoke01', $jar) == 401 }), 'the revoked certificate is refused');
};

subtest 'a reload with a larger zone gives a working set' => sub {
    bulk_revocations(1000, '2', 86400);
    ok(eventually(5, sub { steady() eq '503' }), 'full again (the certificates live a day)');
    $t->write_conf($conf->('1m'), workers => 2);
    $t->reload_nginx(workers => 2);
    ok(eventually(5, sub { steady() eq '200' }), 'after nginx -s reload with 1m, a user passes');
    is($t->login('revoke01', $pw, cert => 'revoke01')->{json}{error}, 'certificate_revoked',
        'the new zone knows the revocations');
};

my @zone = grep { /revocation zone/ } split /\n/, $t->error_log;
ok(!grep({ /\[(alert|crit)\]/ } @zone), 'never an [alert] or [crit] about the zone');

$t->done;
done_testing;
