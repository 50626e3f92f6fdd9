# Fleet mode (issue 15): three nginx nodes behind a balancer share one store
# (PostgreSQL) and two memcached servers. A flow and a session move between
# nodes; a flood of wrong passwords over all nodes is judged at most
# `failures` times and locks once; a revocation, a logout, a block and a reset
# reach every node (new and kept-alive connections) within 2 s, no reload.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use URI::Escape qw(uri_escape);
use Certgate::Fleet;

my $began = time;
my $f = Certgate::Fleet->new;
$f->start;
my @nodes = (1, 2, 3);
my $pw = 'Passw0rd!';
my $wrong = 'Wrong0!pw';
$f->add_org('ORG001');

# The lockout's `failures`: certgate_lockout of the nodes' config, else its
# default (docs/directives.md).
my ($failures) = (Certgate::Test::read_file($f->node(1)->prefix . '/nginx.conf') =~ /certgate_lockout\s+(\d+)/);
$failures //= 6;
diag('fleet store: ' . ($f->is_postgresql ? 'PostgreSQL' : 'SQLite'));

sub judged { my ($u) = @_; return scalar grep { $_->{kind} eq 'auth.failed' && $_->{subject} eq $u } $f->audit }
sub locks  { my ($u) = @_; return scalar grep { $_->{kind} eq 'user.locked' && $_->{subject} eq $u } $f->audit }
sub token_of { my ($node, $jar) = @_; return Certgate::Test::json_of($f->node($node)->get('/certgate/', json => 1, cookies => $jar))->{csrf_token} }
sub session_cookie { my ($jar) = @_; return (Certgate::Test::read_file($jar) =~ /__Host-certgate_session\t(\S+)/)[0] }

subtest 'one issuance over three nodes; a login on one node is a session on all' => sub {
    $f->add_user('ORG001', 'sess0001', $pw);
    my $jar = $f->jar;
    my $r = $f->node(1)->submit('/certgate/issue', { user_id => 'sess0001', password => $pw }, jar => $jar);
    ok($r->{json}{ok}, '④ on node 1') or diag explain $r->{json};
    my $code = $f->code_for('sess0001');
    $r = $f->node(2)->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    ok($r->{json}{ok}, '⑤ on node 2 (the flow is in memcached)') or diag explain $r->{json};
    $r = $f->node(3)->submit('/certgate/issue/confirm', {}, jar => $jar);
    ok($r->{json}{ok}, '⑥ on node 3') or diag explain $r->{json};
    my $dl = $f->node(1)->get($r->{json}{download} // '/none', cookies => $jar);
    is($dl->{status}, 200, '⑧ the .p12 downloads from node 1');
    $f->save_p12($dl->{raw_body}, 'sess0001', $pw);

    my $login = $f->jar;
    is($f->node(1)->get('/app/x', cert => 'sess0001', cookies => $login, json => 1)->{status}, 401,
        'no session yet: the app says login_required');
    ok($f->node(1)->login('sess0001', $pw, cert => 'sess0001', jar => $login)->{json}{ok}, 'login on node 1');
    ok(session_cookie($login), 'a portal session cookie');
    for my $i (@nodes) {
        my $a = $f->node($i)->get('/app/x', cert => 'sess0001', cookies => $login);
        is($a->{status}, 200, "node $i: the session passes");
        is($a->{body}, "business app\n", "node $i: the app's page");
    }
    my $other = $f->client_cert_until('sess0001', time + 86400, name => 'sess0001-other');
    is($f->node(2)->get('/app/x', cert => $other, cookies => $login, json => 1)->{status}, 401,
        'node 2: the session stays bound to its certificate');
};

# $n wrong passwords for $user from 30 clients over the three nodes, and
# (streams) others sent alongside.
sub wrong_password_stream {
    my ($user, $n, %o) = @_;
    my $jar = $f->jar;
    my $token = token_of(1, $jar);
    return { tag => $user, n => $n, clients => $o{clients} || 30, path => '/certgate/issue', jar => $jar,
        body => "user_id=$user&password=" . uri_escape($wrong) . "&csrf_token=$token" };
}

sub mails_to { my ($u) = @_; return scalar grep { ($_->{to} // '') =~ /^\Q$u\E\@/ } $f->decoded_mails }

# Exactly one lock mail: it arrives, and no second follows within 2 s.
sub one_lock_mail {
    my ($u) = @_;
    $f->wait_mails_to(qr/^\Q$u\E\@/, 1, 15);
    $f->wait_mails_to(qr/^\Q$u\E\@/, 2, 2);
    return mails_to($u);
}

subtest "1000 parallel wrong passwords over 3 nodes: at most $failures judged, one lock, one mail" => sub {
    $f->add_user('ORG001', 'flood001', $pw);
    my $start = time;
    my @res = $f->flood(streams => [wrong_password_stream('flood001', 1000)]);
    my $took = time - $start;
    is(scalar @res, 1000, sprintf('1000 answers in %.1f s', $took));
    my %per_node;
    $per_node{$_->{node}}++ for @res;
    is_deeply([map { $per_node{$_} // 0 } @nodes], [334, 333, 333], 'spread over the three nodes');
    my %seen;
    $seen{"$_->{status} $_->{error}"}++ for @res;
    is(scalar(grep { $_->{error} eq 'ok' || $_->{status} == 200 } @res), 0, 'none passed') or diag explain \%seen;
    is(scalar(grep { $_->{status} == 0 || $_->{status} >= 500 } @res), 0, 'none failed (no 5xx, no broken connection)')
        or diag explain \%seen;
    my @other = grep { $_->{error} ne 'bad_credentials' && $_->{error} ne 'locked' } @res;
    is(scalar @other, 0, 'every answer is bad_credentials or locked') or diag explain \%seen;
    my $judged = judged('flood001');
    cmp_ok($judged, '<=', $failures, "$judged judged (auth.failed events in the store)");
    diag("flood over 3 nodes: $judged of 1000 judged, answers " . join(', ', map { "$_ × $seen{$_}" } sort keys %seen)
        . sprintf(', %.1f s', $took));
    is(locks('flood001'), 1, 'exactly one lock (user.locked)');
    is(one_lock_mail('flood001'), 1, 'exactly one lock mail');
    is($f->node(2)->submit('/certgate/issue', { user_id => 'flood001', password => $pw })->{json}{error}, 'locked',
        'node 2: the right password is refused: locked');
};

subtest 'the same flood with one memcached killed during it: 503 for what needs it, never a pass' => sub {
    my $live = $f->user_counting_on(1, 'mclive', $pw, $wrong);    # its counter stays reachable
    my $dead = $f->user_counting_on(2, 'mcdead', $pw, $wrong);    # its counter is on the killed server
    my $killed_at;
    my $gate = $f->dir . '/memcached2-killed';
    my $dead_stream = wrong_password_stream($dead, 300, clients => 3);
    $dead_stream->{gate} = $gate;    # its requests go once the server is dead
    # And some of the live user's after the kill too, whatever the machine's
    # speed: under CI load the 1000 could all be sent before it.
    my $live_after = wrong_password_stream($live, 100, clients => 3);
    $live_after->{gate} = $gate;
    my @res = $f->flood(
        streams => [wrong_password_stream($live, 1000, clients => 24), $live_after, $dead_stream],
        during  => sub {
            # Killed while the flood is judged for the live server's user.
            for (1 .. 3000) {
                last if $f->sql("SELECT count(*) FROM events WHERE kind = 'auth.failed' AND subject = '$live'") >= 2;
                sleep 0.005;
            }
            $f->kill_memcached(2);
            $killed_at = time;
            Certgate::Test::write_file($gate, '');
        });
    is(scalar @res, 1400, '1400 answers');
    my %seen;
    $seen{"$_->{tag} $_->{status} $_->{error}"}++ for @res;
    is(scalar(grep { $_->{error} eq 'ok' || $_->{status} == 200 } @res), 0, 'none passed') or diag explain \%seen;
    is(scalar(grep { $_->{status} == 0 || ($_->{status} >= 500 && $_->{status} != 503) } @res), 0,
        'no broken connection, no 5xx but 503') or diag explain \%seen;
    my @bad503 = grep { $_->{status} == 503 && $_->{error} ne 'unavailable' } @res;
    is(scalar @bad503, 0, 'every 503 says unavailable');

    my @live = grep { $_->{tag} eq $live } @res;
    is(scalar(grep { $_->{error} ne 'bad_credentials' && $_->{error} ne 'locked' } @live), 0,
        "$live (counter on the live server): bad_credentials or locked only");
    my $judged_live = judged($live);
    cmp_ok($judged_live, '<=', $failures, "$live: $judged_live judged");
    is(locks($live), 1, "$live: exactly one lock");
    is(one_lock_mail($live), 1, "$live: exactly one lock mail");

    my @dead = grep { $_->{tag} eq $dead } @res;
    my @after = grep { $_->{start} > $killed_at } @dead;
    is(scalar @after, 300, "$dead: its 300 requests were sent after the kill");
    cmp_ok(scalar(grep { $_->{tag} eq $live && $_->{start} > $killed_at } @res), '>', 0,
        "while ${live}'s flood went on");
    is(scalar(grep { $_->{status} != 503 } @after), 0, "$dead: every one of them answered 503 unavailable")
        or diag explain \%seen;
    my %dead_nodes = map { $_->{node} => 1 } @after;
    is_deeply([sort keys %dead_nodes], \@nodes, 'on all three nodes');
    my $judged_dead = judged($dead);
    is($judged_dead, 1, "$dead: none judged after the kill (1, from before the flood)");
    is(locks($dead), 0, "$dead: no lock");
    diag("flood with memcached 2 killed: $live $judged_live judged + 1 lock; $dead $judged_dead judged, "
        . scalar(@after) . ' answers 503 after the kill');
    $f->start_memcached_again(2);
};

# When each node first refused: $check->($node) is true once refused. Asks
# every 50 ms for up to 10 s; returns { node => seconds after $t0 }.
sub reach {
    my ($t0, $check) = @_;
    my %at;
    while (time - $t0 < 10 && keys %at < @nodes) {
        for my $i (grep { !exists $at{$_} } @nodes) {
            my $asked = time;
            $at{$i} = $asked - $t0 if $check->($i);
        }
        sleep 0.05;
    }
    return \%at;
}

sub within_2s {
    my ($what, $at) = @_;
    diag(sprintf '%s reach: %s', $what, join(', ', map { defined $at->{$_} ? sprintf('node %d %.2f s', $_, $at->{$_}) : "node $_ never" } @nodes));
    for my $i (@nodes) {
        ok(defined $at->{$i} && $at->{$i} <= 2, sprintf('%s: node %d within 2 s (%s)', $what, $i,
            defined $at->{$i} ? sprintf('%.2f s', $at->{$i}) : 'not in 10 s'));
    }
}

# A user with a certificate in the store, logged in on node 1; returns
# (cert name, session cookie, keep-alive connections per node that passed).
sub logged_in_everywhere {
    my ($user) = @_;
    $f->add_user('ORG001', $user, $pw);
    my $name = $f->client_cert_until($user, time + 86400, store_user => $user, name => $user);
    my $jar = $f->jar;
    ok($f->node(1)->login($user, $pw, cert => $name, jar => $jar)->{json}{ok}, "$user: login on node 1");
    my $cookie = '__Host-certgate_session=' . session_cookie($jar);
    my %ka;
    for my $i (@nodes) {
        $ka{$i} = $f->connection($i, cert => $name);
        is($ka{$i}->('GET', '/app/x', cookie => $cookie)->[0], 200, "$user: node $i passes (kept alive)");
    }
    return ($name, $cookie, \%ka, $jar);
}

# Refused on node $i on a new connection and on the kept-alive one.
sub refused_everywhere_check {
    my ($name, $cookie, $ka, $error) = @_;
    return sub {
        my ($i) = @_;
        my $new = $f->connection($i, cert => $name)->('GET', '/app/x', cookie => $cookie, no_reconnect => 1);
        my $old = $ka->{$i}->('GET', '/app/x', cookie => $cookie, no_reconnect => 1);
        return $new->[0] == 401 && $new->[1] =~ /"$error"/ && $old->[0] == 401 && $old->[1] =~ /"$error"/;
    };
}

subtest 'certgatectl cert revoke: refused on all 3 nodes within 2 s, new and kept-alive connections' => sub {
    my ($name, $cookie, $ka) = logged_in_everywhere('revoke01');
    my $serial = Certgate::Test::openssl('x509', '-noout', '-serial', '-in', $f->dir . "/$name.crt") =~ s/^serial=|\s+//gr;
    my $t0 = time;
    my ($rc, $out) = $f->certgatectl('cert', 'revoke', $serial, '--reason', 'keyCompromise');
    is($rc, 0, 'certgatectl cert revoke') or diag $out;
    my $done = time;
    my $at = reach($done, refused_everywhere_check($name, $cookie, $ka, 'certificate_revoked'));
    diag(sprintf 'certgatectl cert revoke took %.2f s', $done - $t0);
    within_2s('revocation', $at);
};

subtest 'a logout on node 1 ends the session on nodes 2 and 3 within 2 s' => sub {
    my ($name, $cookie, $ka, $jar) = logged_in_everywhere('logout01');
    my $r = $f->node(1)->submit('/certgate/logout', {}, jar => $jar, cert => $name);
    ok($r->{json}{ok}, 'logout on node 1');
    my $at = reach(time, refused_everywhere_check($name, $cookie, $ka, 'login_required'));
    within_2s('logout', $at);
};

for my $case (['block001', 'block'], ['reset001', 'reset']) {
    my ($user, $verb) = @$case;
    subtest "certgatectl user $verb ends the session on all 3 nodes within 2 s" => sub {
        my ($name, $cookie, $ka) = logged_in_everywhere($user);
        my ($rc, $out) = $f->certgatectl('user', $verb, $user);
        is($rc, 0, "certgatectl user $verb") or diag $out;
        my $at = reach(time, refused_everywhere_check($name, $cookie, $ka, 'login_required'));
        within_2s("user $verb", $at);
        is($f->node(3)->login($user, $pw, cert => $name)->{json}{ok} ? 1 : 0, 0, "node 3: $user cannot log in again");
    };
}

$f->done;
diag(sprintf 'fleet.t ran %.0f s', time - $began);
done_testing;
