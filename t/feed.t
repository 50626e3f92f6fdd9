# The revocation feed made fit for a fleet (issue 15), on SQLite. With the
# default certgate_sync_interval a revocation, block or logout written to the
# store by anyone (certgatectl here, another node in a fleet) is refused
# within 2 s. A node whose feed cannot read the store for longer than
# certgate_sync_max_lag fails closed (503, health says stale, one log line
# each way) and recovers by itself; a store whose events no longer continue
# the feed's cursor (restored from a backup) makes the node load the set
# again, so the events written after the restore are not skipped.
#
# The outage is a test hook (a file certgate.db.feed-down fails the feed's
# polls): an open SQLite connection keeps reading a file made unreadable or
# moved away, so no chmod or rename takes the store away from a running poll.
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
my $d = $t->dir;
my $db = "$d/certgate.db";
my $conf = sub {
    my ($sync) = @_;
    return <<"EOF";
    %%CERTGATE%%
$sync
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location / { return 200 "ok\\n"; }
    }
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location = /metrics { certgate_metrics; }
        location /app/ { certgate_require; proxy_pass http://127.0.0.1:%%HTTP_PORT%%; }
    }
EOF
};
# The defaults first: certgate_sync_interval 1s, certgate_sync_max_lag 10s.
$t->write_conf($conf->(''), workers => 2);
$t->start_nginx;

my $pw = 'Passw0rd!';
$t->add_org('ORG001');
my %serial;
for my $u (qw(revoke01 block001 logout01 steady01 outage01 restore1 later001)) {
    $t->add_user('ORG001', $u, $pw);
    $t->client_cert($u, org => 'Org ORG001');
    my ($rc, $out) = $t->certgatectl('cert', 'import', "$d/$u.crt", '--user', $u);
    die "import $u: $out" if $rc;
    $serial{$u} = uc((`openssl x509 -noout -serial -in $d/$u.crt` =~ /serial=(\w+)/)[0]);
}

sub app {
    my ($user, $jar) = @_;
    return $t->get('/app/x', cert => $user, cookies => $jar, json => 1)->{status};
}

sub session {
    my ($user) = @_;
    my $jar = $t->jar;
    my $r = $t->login($user, $pw, cert => $user, jar => $jar);
    die "login $user: " . ($r->{json}{error} // $r->{status}) unless $r->{json}{ok};
    return $jar;
}

# Seconds from now until a probe that began then found $cond->() true,
# probing every 50 ms; undef past $limit. The time is when the probe was sent,
# not when its answer came back: on a loaded machine (CI runs the suites two
# at a time) a request can take a few hundred ms to be answered, and what is
# measured is how soon the node refuses, not how soon the client hears it.
sub within {
    my ($limit, $cond) = @_;
    my $start = time;
    while (time - $start < $limit) {
        my $asked = time;
        return $asked - $start if $cond->();
        sleep 0.05;
    }
    return undef;
}

# A test name with the time it took, so the log shows the figure either way.
sub took {
    my ($name, $took, $never) = @_;
    return sprintf('%s (%s)', $name, defined $took ? sprintf('%.2f s', $took) : $never);
}

sub ready { my $r = $t->get('/certgate/health/ready'); return ($r, Certgate::Test::json_of($r)) }

sub metric {
    my ($name) = @_;
    my $body = $t->get('/metrics')->{raw_body};
    return $body =~ /^\Q$name\E (\S+)$/m ? $1 + 0 : undef;
}

sub count_lines { my ($re) = @_; return scalar(grep { /$re/ } split /\n/, $t->error_log) }

ok(defined within(5, sub { app('steady01', session('steady01')) == 200 }), 'the set is loaded: a session passes');

subtest 'default settings: refused on the other side within 2 s' => sub {
    my %jar = map { $_ => session($_) } qw(revoke01 block001 logout01);
    is(app($_, $jar{$_}), 200, "$_ passes first") for sort keys %jar;

    my ($rc, $out) = $t->certgatectl('cert', 'revoke', $serial{revoke01}, '--reason', 'keyCompromise');
    is($rc, 0, 'certgatectl cert revoke') or diag $out;
    my $took = within(3, sub { app('revoke01', $jar{revoke01}) != 200 });
    ok(defined $took && $took < 2, took('the revoked certificate is refused within 2 s', $took, 'more than 3 s'));

    ($rc, $out) = $t->certgatectl('user', 'block', 'block001');
    is($rc, 0, 'certgatectl user block') or diag $out;
    $took = within(3, sub { app('block001', $jar{block001}) != 200 });
    ok(defined $took && $took < 2, took("the blocked user's session ends within 2 s", $took, 'more than 3 s'));

    # A logout is a session.logout event, read back from the store like the
    # others: a copy of the cookie from before it stands for another node.
    my $copy = "$d/logout01.copy";
    Certgate::Test::write_file($copy, Certgate::Test::read_file($jar{logout01}));
    ok($t->submit('/certgate/logout', {}, jar => $jar{logout01}, cert => 'logout01')->{json}{ok},
        'logout01 logs out');
    $took = within(3, sub { app('logout01', $copy) != 200 });
    ok(defined $took && $took < 2, took('the cookie kept from before the logout is refused within 2 s', $took, 'more than 3 s'));
    is(app('steady01', session('steady01')), 200, 'others still pass');
};

# Short limits from here on.
$t->write_conf($conf->("    certgate_sync_interval 300ms;\n    certgate_sync_max_lag 2s;"), workers => 2);
$t->reload_nginx(workers => 2);

subtest 'a store out of reach past certgate_sync_max_lag: 503, health says stale, recovery' => sub {
    my $jar = session('outage01');
    ok(defined within(5, sub { app('outage01', $jar) == 200 }), 'outage01 passes');
    my ($r, $j) = ready();
    ok($j->{feed}{fresh}, 'health/ready: the feed is fresh') or diag $r->{body};
    my $stale_before = metric('certgate_revocation_feed_stale_total') // -1;

    Certgate::Test::write_file("$db.feed-down", '');
    my $start = time;
    sleep 0.8;
    is(app('outage01', $jar), 200, 'a few failed polls are no outage yet');
    my $took = within(5, sub { app('outage01', $jar) == 503 });
    ok(defined $took, 'the protected path answers 503') or diag $t->error_log;
    my $since = time - $start;
    ok($since >= 1.5, "not long before the limit (after ${since}s; 2 s from the last good poll)");
    ($r, $j) = ready();
    is($r->{status}, 503, 'health/ready: 503');
    ok(!$j->{feed}{fresh}, 'health/ready: the feed is not fresh') or diag $r->{body};
    ok($j->{feed}{lag_seconds} >= 2, "health/ready: lag_seconds $j->{feed}{lag_seconds}");
    ok($j->{store}{up}, 'while the store itself answers its probe (only the feed is cut)');
    is(metric('certgate_revocation_feed_stale'), 1, 'metric: certgate_revocation_feed_stale 1');
    is(metric('certgate_revocation_feed_stale_total'), $stale_before + 1, 'metric: one transition');
    is(app('steady01', session('steady01')), 503, 'another user, fresh login: 503 as well');
    sleep 0.5;
    is(count_lines(qr/\[error\].*revocation set is stale/), 1, 'one [error] line for the transition, not one per request');

    # Meanwhile a revocation: the store is written, the feed cannot read it.
    my ($rc, $out) = $t->certgatectl('cert', 'revoke', $serial{later001}, '--reason', 'keyCompromise');
    is($rc, 0, 'a revocation during the outage') or diag $out;

    unlink "$db.feed-down";
    $took = within(5, sub { app('outage01', $jar) == 200 });
    ok(defined $took && $took < 2, took('the same session passes again by itself, no reload', $took, 'more than 5 s'));
    ($r, $j) = ready();
    is($r->{status}, 200, 'health/ready: 200 again') or diag $r->{body};
    ok($j->{feed}{fresh} && $j->{feed}{lag_seconds} <= 1, 'fresh, lag_seconds small');
    is(metric('certgate_revocation_feed_stale'), 0, 'metric: stale 0');
    is(count_lines(qr/\[notice\].*store was read again: protected locations serve again/), 1,
        'one [notice] line for the way back');
    ok(count_lines(qr/no good read of the store for \d+ ms: loading the revocation set again/) >= 1,
        'after the outage the set was loaded again, not continued');
    ok(metric('certgate_revocation_feed_reloads_total') >= 1, 'metric: reloads_total');
    my $later = $t->jar;
    $t->login('later001', $pw, cert => 'later001', jar => $later);
    isnt(app('later001', $later), 200, 'the revocation made during the outage is in force');
};

subtest 'a store restored from a backup: the set is loaded again, no event skipped' => sub {
    my ($rc, $out) = Certgate::Test::run('sqlite3', '-cmd', '.timeout 10000', $db, ".backup $d/backup.db");
    is($rc, 0, 'sqlite3 .backup') or diag $out;
    my $reloads = metric('certgate_revocation_feed_reloads_total');
    # Events after the backup move the cursor past anything the backup holds.
    for (1 .. 3) {
        my $jar = session('steady01');
        $t->submit('/certgate/logout', {}, jar => $jar, cert => 'steady01');
    }
    my $jar = session('restore1');
    ok(defined within(3, sub { app('restore1', $jar) == 200 }), 'restore1 passes');
    sleep 0.7;    # the feed read the events above

    ($rc, $out) = Certgate::Test::run('sqlite3', '-cmd', '.timeout 10000', $db, ".restore $d/backup.db");
    is($rc, 0, 'sqlite3 .restore (the backup back into the live file)') or diag $out;
    my $took = within(5, sub { count_lines(qr/\[error\].*events do not continue from where the feed read \(event \d+/) >= 1 });
    ok(defined $took, 'the gap is found and said') or diag $t->error_log;
    ok(defined within(3, sub { (metric('certgate_revocation_feed_reloads_total') // 0) > $reloads }),
        'metric: one more reload');

    # The next revocation gets an event id the feed had passed already.
    ($rc, $out) = $t->certgatectl('cert', 'revoke', $serial{restore1}, '--reason', 'keyCompromise');
    is($rc, 0, 'a revocation after the restore') or diag $out;
    $took = within(3, sub { app('restore1', $jar) != 200 });
    ok(defined $took && $took < 2, took('refused within 2 s: its event was not skipped', $took, 'more than 3 s'));
    is(app('steady01', session('steady01')), 200, 'others pass');
};

$t->done;
done_testing;
