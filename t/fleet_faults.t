# Fleet mode under faults (issue 15): a node killed with -9 in the middle of
# an issuance, the store's PostgreSQL stopped for 10 s, a memcached killed,
# a memcached frozen with SIGSTOP. Each time the suite checks what the user
# sees (503 unavailable, "start again", a retry on another node that works),
# that nothing passes that needed the dead part, that nothing live is left
# behind, and that every node recovers without a reload.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use URI::Escape qw(uri_escape);
use Certgate::Fleet;

my $began = time;
my $f = Certgate::Fleet->new;
# The wrong passwords that time the portal (SIGSTOP) must not lock the user.
# certgate_sync_max_lag 3s: the store outage below outlasts it, so the
# protected app must turn to 503 within the outage (fail closed).
$f->start(extra => "    certgate_lockout 50 60m 3;\n    certgate_sync_max_lag 3s;");
my @nodes = (1, 2, 3);
my $pw = 'Passw0rd!';
my $wrong = 'Wrong0!pw';
my $d = $f->dir;
$f->add_org('ORG001');
my $unavailable_ja = qr/ただいまサービスを利用できません/;

sub certs_of {
    my ($user) = @_;
    return map { [split /\|/] } split /\n/,
        $f->sql("SELECT serial, status FROM certificates WHERE user_id = '$user' ORDER BY issued_at, serial");
}
sub live_count { my ($u) = @_; return scalar grep { $_->[1] eq 'issued' } certs_of($u) }
sub judged { my ($u) = @_; return scalar grep { $_->{kind} eq 'auth.failed' && $_->{subject} eq $u } $f->audit }
sub mails_to { my ($u) = @_; return scalar grep { ($_->{to} // '') =~ /^\Q$u\E\@/ } $f->decoded_mails }

# ④ and ⑤ for $user on node $node, in $jar.
sub up_to_confirm {
    my ($node, $user, $jar) = @_;
    my $before = mails_to($user);
    my $r = $f->node($node)->submit('/certgate/issue', { user_id => $user, password => $pw }, jar => $jar);
    return $r unless $r->{json}{ok};
    my $code = $f->code_for($user, $before);
    return $f->node($node)->submit('/certgate/issue/code', { code => $code }, jar => $jar);
}

# Downloads the .p12 of $path from node $node to <dir>/$name.{crt,key}.
sub download {
    my ($node, $jar, $path, $name) = @_;
    my $res = $f->node($node)->request($path, cookies => $jar);
    $f->save_p12($res->{raw_body}, $name, $pw) if $res->{status} == 200;
    return $res;
}

subtest 'a node killed with -9 during ⑥: nothing stays live, the retry on another node issues one' => sub {
    $f->add_user('ORG001', 'killnd01', $pw);
    my $jar = $f->jar;
    ok(up_to_confirm(1, 'killnd01', $jar)->{json}{ok}, '④ ⑤ on node 1');
    # ⑥ on node 1, held (a test hook) between recording the certificate and
    # handing over its .p12.
    my $token = Certgate::Test::json_of($f->node(1)->get('/certgate/', json => 1, cookies => $jar))->{csrf_token};
    my $out = "$d/killed-confirm.txt";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $r = $f->node(1)->request('/certgate/issue/confirm?handover_delay_ms=5000', method => 'POST', json => 1,
            cookies => $jar, body => { csrf_token => $token });
        Certgate::Test::write_file($out, "$r->{status}\n$r->{body}");
        POSIX::_exit(0);
    }
    my @certs;
    for (1 .. 200) {
        @certs = certs_of('killnd01');
        last if @certs;
        sleep 0.05;
    }
    is($certs[0][1] // '', 'pending', 'node 1 recorded the certificate, pending');
    $f->kill_node(1);
    is(scalar(() = $f->node_pids(1)), 0, 'node 1: master and workers are gone');
    waitpid($pid, 0);
    my ($status) = split /\n/, Certgate::Test::read_file($out) // "0\n";
    isnt($status, 200, "the browser got no certificate from node 1 (status $status)");
    is(live_count('killnd01'), 0, 'no certificate of the user is live');

    # The balancer sends the user to node 2: ⑦ says retry, 発行 again works.
    my $p = $f->node(2)->get('/certgate/issue/confirm', json => 1, cookies => $jar);
    like($p->{body}, qr/"retry":true/, 'node 2: ⑦ says retry') or diag $p->{body};
    my $c = $f->node(2)->submit('/certgate/issue/confirm', {}, jar => $jar);
    ok($c->{json}{ok}, 'node 2: 発行 again') or diag explain $c->{json};
    is(download(2, $jar, $c->{json}{download} // '/none', 'killnd01-2')->{status}, 200, 'node 2: the .p12 downloads');
    my %status = map { $_->[0] => $_->[1] } certs_of('killnd01');
    is($status{$certs[0][0]}, 'revoked', 'the certificate stranded on node 1 is revoked');
    is(live_count('killnd01'), 1, 'exactly one certificate is live');
    my @ab = grep { $_->{kind} eq 'cert.abandoned' && $_->{subject} eq $certs[0][0] } $f->audit;
    like($ab[0]{detail} // '', qr/why=/, 'cert.abandoned says why');
    my $login = $f->jar;
    ok($f->node(3)->login('killnd01', $pw, cert => 'killnd01-2', jar => $login)->{json}{ok}, 'node 3: the new certificate logs in');

    $f->start_node(1);
    # A started node refuses protected requests until its feed has loaded
    # the set; the balancer sends it users once it is ready (docs/fleet.md).
    my $ready_after;
    my $t0 = time;
    while (time - $t0 < 30) {
        if ($f->node(1)->get('/certgate/health/ready', json => 1)->{status} == 200) { $ready_after = time - $t0; last }
        sleep 0.1;
    }
    ok(defined $ready_after, sprintf('node 1 started again: health/ready 200 (after %.1f s)', $ready_after // -1));
    is($f->node(1)->get('/app/x', cert => 'killnd01-2', cookies => $login)->{status}, 200,
        'node 1 started again: the session passes there too');
    my $stranded = $f->client_cert_until('killnd01', time + 3600, name => 'killnd01-x');
    isnt($f->node(1)->get('/app/x', cert => $stranded, cookies => $login)->{status}, 200,
        'node 1: another certificate with the session does not pass');
};

# A flow after ④ (its code mailed) whose state is on memcached $want:
# (user, jar, code).
sub flow_on {
    my ($want, $prefix) = @_;
    for my $n (1 .. 40) {
        my $u = sprintf '%s%02d', $prefix, $n;
        $f->add_user('ORG001', $u, $pw);
        my %before = map { $_ => 1 } map { $f->memcached_keys($_) } 1, 2;
        my $jar = $f->jar;
        my $r = $f->node(2)->submit('/certgate/issue', { user_id => $u, password => $pw }, jar => $jar);
        die "$u: ④ $r->{status}" unless $r->{json}{ok};
        my $code = $f->code_for($u);
        my @new = grep { /^cg:flow:/ && !$before{$_} } map { $f->memcached_keys($_) } 1, 2;
        next unless @new == 1;
        return ($u, $jar, $code) if $f->memcached_holding(qr/^\Q$new[0]\E\z/) == $want;
    }
    die "no flow on memcached $want";
}

subtest 'a memcached killed: 503 for what needs it, its flows and codes say start again, never a pass' => sub {
    my ($flow_user, $flow_jar, $code) = flow_on(2, 'mcflow');
    my $counted = $f->user_counting_on(2, 'mckill', $pw, $wrong);
    my $spared = $f->user_counting_on(1, 'mcspar', $pw, $wrong);
    $f->kill_memcached(2);
    for my $i (@nodes) {
        my $r = $f->node($i)->submit('/certgate/issue/code', { code => $code }, jar => $flow_jar);
        is("$r->{status} " . ($r->{json}{error} // ''), '503 unavailable', "node $i: ⑤ on the dead server: 503 unavailable");
        my $w = $f->node($i)->submit('/certgate/issue', { user_id => $counted, password => $pw });
        is("$w->{status} " . ($w->{json}{error} // ''), '503 unavailable',
            "node $i: the right password of a user counting there: 503 unavailable, not a pass");
        my $h = $f->node($i)->submit('/certgate/issue', { user_id => $counted, password => $pw }, html => 1);
        is($h->{status}, 503, "node $i: the page answers 503");
        like($h->{body}, $unavailable_ja, 'saying the service is unavailable');
        my $s = $f->node($i)->submit('/certgate/issue', { user_id => $spared, password => $wrong });
        is($s->{json}{error}, 'bad_credentials', "node $i: a user counting on the live server is still judged");
    }
    is(judged($counted), 1, "$counted: nothing judged while its counter was away");

    $f->start_memcached_again(2);    # empty: its flows and codes are gone
    my $back;
    for (1 .. 100) {
        my $r = $f->node(1)->submit('/certgate/issue/code', { code => $code }, jar => $flow_jar);
        $back = $r->{json}{error} // ($r->{json}{ok} ? 'ok' : "status $r->{status}");
        last if $back ne 'unavailable';
        sleep 0.1;
    }
    is($back, 'flow_expired', 'memcached back, empty: ⑤ with the old flow says the flow expired, start again');
    for my $i (@nodes) {
        my $r = $f->node($i)->submit('/certgate/issue/code', { code => $code }, jar => $flow_jar);
        is($r->{json}{error}, 'flow_expired', "node $i: flow_expired too, never a pass");
    }
    my $h = $f->node(3)->submit('/certgate/issue/code', { code => $code }, jar => $flow_jar, html => 1);
    like($h->{body}, qr/もう一度|最初から|start again/i, 'the page says to start again') or diag substr($h->{body}, 0, 600);
    ok(up_to_confirm(3, $flow_user, $f->jar)->{json}{ok}, 'starting again works (④ ⑤ on node 3)');
};

# The memcached timeout of the nodes' config (certgate_memcached timeout=,
# else its default 500ms), in seconds.
sub memcached_timeout {
    my ($t) = Certgate::Test::read_file($f->node(1)->prefix . '/nginx.conf') =~ /certgate_memcached[^;]*timeout=(\d+)ms/;
    return ($t // 500) / 1000;
}

subtest 'a memcached frozen (SIGSTOP): what needs it fails within the timeout, the rest stays prompt on every node' => sub {
    my $frozen = $f->user_counting_on(2, 'mcstop', $pw, $wrong);
    my ($name, $jar);
    my $warm = $f->user_counting_on(1, 'mcwarm', $pw, $wrong, setup => sub {
        my ($u) = @_;
        $name = $f->client_cert_until($u, time + 86400, store_user => $u, name => "$u-cert");
        $jar = $f->jar;
        $f->node(1)->login($u, $pw, cert => $name, jar => $jar)->{json}{ok} or die "$u: login failed";
    });
    my $timeout = memcached_timeout();
    # The app (memory only) and ④ of a user counting on the live server, on
    # every node, three rounds: the slowest of each, and wrong answers.
    my $ask_others = sub {
        my %slowest;
        for my $round (1 .. 3) {
            for my $i (@nodes) {
                my $t0 = time;
                my $a = $f->node($i)->get('/app/x', cert => $name, cookies => $jar);
                my $t1 = time;
                my $p = $f->node($i)->submit('/certgate/issue', { user_id => $warm, password => $wrong });
                my $t2 = time;
                $slowest{$i}{app} = $t1 - $t0 if $t1 - $t0 > ($slowest{$i}{app} // 0);
                $slowest{$i}{portal} = $t2 - $t1 if $t2 - $t1 > ($slowest{$i}{portal} // 0);
                next if $a->{status} == 200 && ($p->{json}{error} // '') eq 'bad_credentials';
                $slowest{$i}{fails}++;
                $slowest{$i}{seen} = "app $a->{status}, ④ $p->{status} " . ($p->{json}{error} // '');
            }
        }
        return \%slowest;
    };
    my $base = $ask_others->();    # all servers up: this machine's pace
    $f->pause_memcached(2);
    my $bound = 4 * $timeout + 1;
    for my $i (@nodes) {
        my $start = time;
        my $r = $f->node($i)->submit('/certgate/issue', { user_id => $frozen, password => $pw });
        my $took = time - $start;
        is("$r->{status} " . ($r->{json}{error} // ''), '503 unavailable', "node $i: a request needing the frozen server: 503 unavailable");
        cmp_ok($took, '<=', $bound, sprintf('node %d: within %.1f s (%.2f s; timeout %.1f s)', $i, $bound, $took, $timeout));
    }
    # Twelve requests stuck on the frozen server at once, while the others
    # are asked on every node.
    my $stuck_jar = $f->jar;
    my $token = Certgate::Test::json_of($f->node(1)->get('/certgate/', json => 1, cookies => $stuck_jar))->{csrf_token};
    my $during;
    my @stuck = $f->flood(
        streams => [{ tag => 'stuck', n => 24, clients => 12, path => '/certgate/issue', jar => $stuck_jar,
            body => "user_id=$frozen&password=" . uri_escape($pw) . "&csrf_token=$token" }],
        during => sub { $during = $ask_others->() });
    is(scalar(grep { $_->{status} == 503 && $_->{error} eq 'unavailable' } @stuck), 24, 'the 24 stuck requests: 503 unavailable');
    my $slowest_stuck = 0;
    $_->{end} - $_->{start} > $slowest_stuck and $slowest_stuck = $_->{end} - $_->{start} for @stuck;
    cmp_ok($slowest_stuck, '<=', $bound, sprintf('each within %.1f s (slowest %.2f s)', $bound, $slowest_stuck));
    for my $i (@nodes) {
        is($during->{$i}{fails} // 0, 0, "node $i: the app and the portal kept answering right")
            or diag($during->{$i}{seen});
        for my $what (qw(app portal)) {
            # Prompt: the app (memory only) at this machine's pace, with no
            # wait for the frozen server on top; ④ (a password hash: CPU the
            # stuck requests' clients share) within twice its pace.
            my $limit = ($what eq 'app' ? 1 : 2) * $base->{$i}{$what} + $timeout;
            cmp_ok($during->{$i}{$what}, '<', $limit, sprintf('node %d: %s stayed prompt (slowest %.2f s; %.2f s with all servers up)',
                $i, $what eq 'app' ? 'the app' : '④ of a user on the live server', $during->{$i}{$what}, $base->{$i}{$what}));
        }
    }
    $f->resume_memcached(2);
    my ($back, $after);
    my $t0 = time;
    while (time - $t0 < 10) {
        my $r = $f->node(2)->submit('/certgate/issue', { user_id => $frozen, password => $wrong });
        $back = $r->{json}{error} // '';
        last if $back eq 'bad_credentials';
        sleep 0.1;
    }
    $after = time - $t0;
    is($back, 'bad_credentials', sprintf('SIGCONT: the frozen server is used again (%.1f s), no reload', $after));
    ok((grep { $f->node($_)->submit('/certgate/issue', { user_id => $frozen, password => $wrong })->{json}{error} eq 'bad_credentials' } @nodes) == 3,
        'on every node');
};

subtest 'PostgreSQL stopped for 10 s: 503 unavailable, nothing passes that needs the store, every node recovers without a reload' => sub {
    unless ($f->is_postgresql) {
        fail('the store outage needs the PostgreSQL fleet (this run: CERTGATE_FLEET_STORE=sqlite)');
        return;
    }
    $f->add_user('ORG001', 'pgdown01', $pw);
    $f->add_user('ORG001', 'pgdown02', $pw);
    my $name = $f->client_cert_until('pgdown01', time + 86400, store_user => 'pgdown01', name => 'pgdown01');
    my $jar = $f->jar;
    ok($f->node(1)->login('pgdown01', $pw, cert => $name, jar => $jar)->{json}{ok}, 'pgdown01 logged in');
    my $mails = mails_to('pgdown02');
    my $stopped = time;
    $f->stop_store;
    my (%seen, @passed, %app, %late);
    my $asked = 0;
    while (time - $stopped < 10) {
        for my $i (@nodes) {
            # The gate decides from memory (no store): a live session may
            # pass; once the feed is too stale it answers 503 (fail closed).
            my $g = $f->node($i)->get('/app/x', cert => $name, cookies => $jar, json => 1);
            my $what = "$g->{status} " . (Certgate::Test::json_of($g)->{error} // '');
            $app{$what}++;
            # certgate_sync_max_lag 3s, a poll a second: stale by 4.5 s at the latest.
            $late{$what}++ if time - $stopped > 5;
            my $l = $f->node($i)->login('pgdown01', $pw, cert => $name);
            my $a = $f->node($i)->submit('/certgate/issue', { user_id => 'pgdown02', password => $pw });
            my $w = $f->node($i)->submit('/certgate/issue', { user_id => 'pgdown02', password => $wrong });
            for my $r ($l, $a, $w) {
                $asked++;
                $seen{"$r->{status} " . ($r->{json}{error} // ($r->{json}{ok} ? 'ok' : '-'))}++;
                push @passed, $r if $r->{json}{ok};
            }
        }
    }
    is(scalar @passed, 0, "$asked logins and ④ on the 3 nodes during the outage: none passed")
        or diag explain \%seen;
    is_deeply([keys %seen], ['503 unavailable'], 'every one answered 503 unavailable') or diag explain \%seen;
    diag('the protected app during the outage: ' . join(', ', map { "$_ × $app{$_}" } sort keys %app));
    is(scalar(grep { !/^(200 |503 unavailable)$/ } keys %app), 0,
        'the protected app: served from memory or 503 unavailable, nothing else') or diag explain \%app;
    is_deeply([keys %late], ['503 unavailable'],
        'past certgate_sync_max_lag (3 s) the protected app is refused on every node (stale revocation set)')
        or diag explain \%late;
    like($f->node(1)->get('/certgate/health/ready', json => 1)->{body}, qr/"fresh":false/, 'health/ready says the feed is not fresh');
    for my $i (@nodes) {
        my $h = $f->node($i)->submit('/certgate/login', { user_id => 'pgdown01', password => $pw }, html => 1, cert => $name);
        is($h->{status}, 503, "node $i: the login page answers 503");
        like($h->{body}, $unavailable_ja, 'saying the service is unavailable');
        is($f->node($i)->get('/certgate/health/ready', json => 1)->{status}, 503, "node $i: health/ready 503");
    }
    my $out = time - $stopped;
    $f->start_store;
    my %back;
    my $t0 = time;
    while (time - $t0 < 20 && keys %back < @nodes) {
        for my $i (grep { !$back{$_} } @nodes) {
            my $l = $f->node($i)->login('pgdown01', $pw, cert => $name);
            $back{$i} = time - $t0 if $l->{json}{ok};
        }
        sleep 0.2 if keys %back < @nodes;
    }
    diag(sprintf 'store down %.1f s; back on %s', $out,
        join(', ', map { defined $back{$_} ? sprintf('node %d after %.1f s', $_, $back{$_}) : "node $_ never" } @nodes));
    is(scalar keys %back, 3, 'every node logs in again without a reload');
    # Ready once the feed has read the store again (health/ready also asks
    # for a fresh feed, each worker its own poll): waited for, bounded.
    my %ready;
    while (time - $t0 < 30 && keys %ready < @nodes) {
        for my $i (grep { !$ready{$_} } @nodes) {
            $ready{$i} = time - $t0 if $f->node($i)->get('/certgate/health/ready', json => 1)->{status} == 200;
        }
        sleep 0.2 if keys %ready < @nodes;
    }
    diag('health/ready 200 again on ' . join(', ', map { defined $ready{$_} ? sprintf('node %d after %.1f s', $_, $ready{$_}) : "node $_ never" } @nodes));
    for my $i (@nodes) {
        ok(defined $ready{$i} && $ready{$i} < 15, "node $i: health/ready 200 again without a reload")
            or diag($f->node($i)->get('/certgate/health/ready', json => 1)->{body});
        is($f->node($i)->get('/app/x', cert => $name, cookies => $jar)->{status}, 200, "node $i: the app passes");
        is($f->node($i)->submit('/certgate/issue', { user_id => 'pgdown02', password => $wrong })->{json}{error},
            'bad_credentials', "node $i: ④ is judged again");
    }
    is(judged('pgdown02'), 3, 'pgdown02: only the 3 wrong passwords after the outage were judged');
    is(mails_to('pgdown02'), $mails, 'and no code mail left for the outage');
};

$f->done;
diag(sprintf 'fleet_faults.t ran %.0f s', time - $began);
done_testing;
