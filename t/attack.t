# The flows under attack and faults (issue 13, R10, R21, R22): the mailed code
# is bounded per user and day, not per flow; one source address that fails
# across many IDs is throttled (429) before it locks them all; an unknown ID
# answers exactly like a real one through every try, lock and block; and
# neither a memcached restart nor an unlock gives extra guesses.
#
# Client addresses come from X-Forwarded-For through nginx's realip module,
# as behind a load balancer, so each subtest is its own source.
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
$t->write_conf(<<'EOF');
    %%CERTGATE%%
    certgate_lockout 6 2s 3;
    certgate_source_limit 15 1h;    # the default, which the harness turns off
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
    }
EOF
$t->start_nginx;
$t->add_org('ORG001');
my $pw = 'Passw0rd!';
my $wrong = 'Wrong0!pw';

# A browser at address $addr: its own jar and CSRF token.
my %clients;
sub client {
    my ($addr) = @_;
    return $clients{$addr} //= do {
        my $jar = $t->jar;
        my $get = $t->get('/certgate/issue', json => 1, cookies => $jar,
            headers => ["X-Forwarded-For: $addr"]);
        { jar => $jar, token => Certgate::Test::json_of($get)->{csrf_token} // '' };
    };
}
sub post_from {
    my ($addr, $path, $fields, %o) = @_;
    my $c = client($addr);
    my $path_q = $o{lang} ? "$path?lang=$o{lang}" : $path;
    my $r = $t->request($path_q, method => 'POST', json => !$o{html}, cookies => $c->{jar},
        headers => ["X-Forwarded-For: $addr"], body => { csrf_token => $c->{token}, %$fields });
    $r->{json} = Certgate::Test::json_of($r);
    return $r;
}
sub auth_from { my ($addr, $user, $password) = @_; post_from($addr, '/certgate/issue', { user_id => $user, password => $password }) }

my $addr_n = 0;
sub fresh_addr { $addr_n++; return sprintf '10.9.%d.%d', int($addr_n / 250), $addr_n % 250 + 1 }

sub events_of {
    my ($kind, $user) = @_;
    return grep {
        $_->{kind} eq $kind
            && ($_->{subject} eq $user || ($_->{detail} // '') =~ /\buser_id=\Q$user\E\b/)
    } $t->audit;
}

subtest 'item 1: 40 flows x 6 codes for one user: at most 30 codes judged, one notice' => sub {
    $t->add_user('ORG001', 'victim01', $pw);
    my ($refused_429, $retry_after) = (0, undef);
    for my $flow (1 .. 40) {
        # A new address per flow: the per-user budget holds without the throttle.
        my $addr = fresh_addr();
        my $r = auth_from($addr, 'victim01', $pw);
        if ($r->{status} == 429) {
            $refused_429++;
            $retry_after //= $r->{headers}{'retry-after'};
            is($r->{json}{error}, 'too_many_requests', "flow $flow: too_many_requests") if $refused_429 == 1;
            next;
        }
        ok($r->{json}{ok}, "flow $flow: ④ passes") or diag explain $r->{json};
        for my $try (1 .. 6) {
            my $c = post_from($addr, '/certgate/issue/code', { code => '000000' });
            last if $c->{json}{error} && $c->{json}{error} ne 'bad_code';
        }
    }
    my $judged = () = (events_of('code.failed', 'victim01'), events_of('code.accepted', 'victim01'));
    cmp_ok($judged, '<=', 30, "$judged codes judged (budget 30 per 24 h)");
    cmp_ok($judged, '>=', 25, 'and the budget is really spent');
    cmp_ok($refused_429, '>=', 30, "$refused_429 flows refused at ④ with 429");
    like($retry_after // '', qr/^\d+$/, "with Retry-After ($retry_after s)");
    cmp_ok($retry_after, '>', 20 * 3600, 'until the 24 h window ends');
    sleep 2.5;    # the outbox sweep sends the notice
    my @mails = grep { ($_->{to} // '') =~ /^victim01\@/ } $t->decoded_mails;
    my @codes = grep { $_->{subject} =~ /認証コードのお知らせ|認証コード/ && $_->{subject} !~ /受け付け停止/ } @mails;
    my @notice = grep { $_->{subject} =~ /受け付け停止/ } @mails;
    cmp_ok(scalar @codes, '<=', 10, scalar(@codes) . ' code mails (at most 10 per 24 h)');
    is(scalar @notice, 1, 'one notice mail that the codes are used up') or diag explain [map { $_->{subject} } @mails];
    like($notice[0]{body} // '', qr/受け付け再開日時/, 'it says when codes are accepted again');
};

subtest 'item 2: 12 users x 6 wrong passwords from one address: 429 before they are all locked' => sub {
    my @users = map { sprintf 'nat%02dusr', $_ } 1 .. 12;
    $t->add_user('ORG001', $_, $pw) for @users;
    my $addr = '10.2.0.1';
    my ($first_429, $r429);
    for my $u (@users) {
        for my $n (1 .. 6) {
            my $r = auth_from($addr, $u, $wrong);
            if ($r->{status} == 429) { $r429 //= $r; $first_429 //= "$u try $n" }
        }
    }
    ok($r429, "a 429 was seen (first at $first_429)");
    is($r429->{json}{error}, 'too_many_requests', 'error too_many_requests');
    like($r429->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/, "Retry-After: $r429->{headers}{'retry-after'}");
    my @locked = grep { my $u = $_; scalar events_of('user.locked', $u) } @users;
    cmp_ok(scalar @locked, '<=', 2, scalar(@locked) . ' of 12 users locked');
    my $other = auth_from('10.2.0.2', $users[-1], $wrong);
    is($other->{status}, 401, 'another address is not throttled: a plain wrong password (401)');
    my $html = post_from($addr, '/certgate/issue', { user_id => $users[-1], password => $wrong }, html => 1);
    is($html->{status}, 429, 'HTML: 429 too');
    like($html->{body}, qr/一時的に受け付けを停止/, 'an HTML page in Japanese');
    my $en = post_from($addr, '/certgate/issue', { user_id => $users[-1], password => $wrong }, html => 1, lang => 'en');
    like($en->{body}, qr/Too many failed authentications/, 'and in English');
    # The right password does not pass a throttled address either.
    is(auth_from($addr, $users[-1], $pw)->{status}, 429, 'even the right password waits');
};

subtest 'item 2: an office behind one NAT address: honest mistakes are not throttled' => sub {
    # 24 clerks log in at 9:00 through one address; every other one mistypes
    # once (12 failures) and then gets it right.
    my @clerks = map { sprintf 'clerk%02dx', $_ } 1 .. 24;
    $t->add_user('ORG001', $_, $pw) for @clerks;
    my $addr = '10.3.0.1';
    my (@status, $throttled);
    for my $i (0 .. $#clerks) {
        if ($i % 2 == 0) {
            my $r = auth_from($addr, $clerks[$i], $wrong);
            $throttled++ if $r->{status} == 429;
        }
        my $r = auth_from($addr, $clerks[$i], $pw);
        $throttled++ if $r->{status} == 429;
        push @status, $r->{json}{ok} ? 'ok' : ($r->{json}{error} // $r->{status});
    }
    ok(!$throttled, 'no 429 for the office');
    is(scalar(grep { $_ eq 'ok' } @status), 24, 'all 24 clerks passed ④') or diag explain \@status;
};

subtest 'item 3: an unknown ID answers like a real one through tries, locks and block' => sub {
    $t->add_user('ORG001', 'realid01', $pw);
    my $mask = sub { my $m = shift // ''; $m =~ s/\d/#/g; $m };
    my $addr = fresh_addr();
    for my $lock (1 .. 3) {
        for my $n (1 .. 8) {
            # a fresh address now and then keeps the throttle out of the picture
            $addr = fresh_addr() if $n % 4 == 1;
            my $real = auth_from($addr, 'realid01', $wrong);
            my $ghost = auth_from($addr, 'ghostid01', $wrong);
            my $what = "lock round $lock, try $n";
            is($ghost->{status}, $real->{status}, "$what: same status ($real->{status})");
            is($ghost->{json}{error}, $real->{json}{error}, "$what: same error ($real->{json}{error})");
            is($mask->($ghost->{json}{message}), $mask->($real->{json}{message}), "$what: same message");
            is_deeply([sort keys %{$ghost->{json}}], [sort keys %{$real->{json}}], "$what: same shape");
            if ($n == 7 && $lock < 3) {
                like($ghost->{json}{message}, qr/ロック解除日時/, "$what: both say when the lock lifts");
            }
            if ($lock == 3 && $n >= 6) {
                is($real->{json}{error}, 'blocked', "$what: blocked after three locks");
                is($real->{status}, 403, "$what: 403");
            }
        }
        sleep 2.2 if $lock < 3;
    }
};

subtest 'item 3: the 6th try takes as long for an unknown ID as for a real one' => sub {
    my (@ratio, @real_t, @ghost_t);
    for my $i (1 .. 20) {
        my $real = $t->add_user('ORG001', "tmreal$i" . 'x', $pw);
        my $ghost = "tmghost$i" . 'x';
        my $addr = fresh_addr();
        for my $n (1 .. 5) {
            auth_from($addr, $real, $wrong);
            auth_from($addr, $ghost, $wrong);
        }
        my $addr2 = fresh_addr();
        # alternate which goes first, so neither always meets a warm cache
        my ($r, $g);
        if ($i % 2) { $r = auth_from($addr2, $real, $wrong); $g = auth_from($addr2, $ghost, $wrong) }
        else        { $g = auth_from($addr2, $ghost, $wrong); $r = auth_from($addr2, $real, $wrong) }
        is($r->{json}{error}, 'locked', "round $i: the 6th locks the real ID") if $i == 1;
        is($g->{json}{error}, 'locked', "round $i: and the unknown one") if $i == 1;
        push @real_t, $r->{time};
        push @ghost_t, $g->{time};
        push @ratio, $g->{time} / $r->{time};
    }
    my $median = sub { my @s = sort { $a <=> $b } @_; $s[@s / 2] };
    my $ratio = $median->(@ratio);
    cmp_ok(abs($ratio - 1), '<', 0.2, sprintf('6th try within 20%% (median pair ratio %.2f; medians: real %.1f ms, unknown %.1f ms)',
        $ratio, $median->(@real_t) * 1000, $median->(@ghost_t) * 1000));
};

subtest 'item 4: 5 wrong + memcached restart, three times: at most 6 judged' => sub {
    $t->add_user('ORG001', 'mcrest01', $pw);
    my @answers;
    for my $round (1 .. 3) {
        my $addr = fresh_addr();
        push @answers, auth_from($addr, 'mcrest01', $wrong)->{json}{error} for 1 .. 5;
        $t->stop_memcached;
        $t->start_memcached;
    }
    # Judged before the lock: tries after it are refused unjudged, unless the
    # 2 s lock of this suite has lifted meanwhile (a new streak).
    my @locks = events_of('user.locked', 'mcrest01');
    ok(scalar @locks, 'locked');
    my $judged = () = grep { $_->{id} < ($locks[0]{id} // 0) } events_of('auth.failed', 'mcrest01');
    is($judged, 6, "$judged wrong passwords judged until the lock");
    is($answers[5], 'locked', 'the 6th try overall locks') or diag explain \@answers;
    # the same for an unknown ID
    for my $round (1 .. 2) {
        my $addr = fresh_addr();
        auth_from($addr, 'mcghost01', $wrong) for 1 .. 5;
        $t->stop_memcached;
        $t->start_memcached;
    }
    my @ghost_locks = events_of('auth.unknown_locked', 'mcghost01');
    ok(scalar @ghost_locks, 'unknown ID: locked');
    my $ghost_judged = () = grep { $_->{id} < ($ghost_locks[0]{id} // 0) } events_of('auth.failed', 'mcghost01');
    is($ghost_judged, 6, "unknown ID: $ghost_judged judged until its lock");
};

subtest 'item 4: certgatectl user unlock and reset leave no stale streak' => sub {
    $t->add_user('ORG001', 'unlock01', $pw);
    my $addr = fresh_addr();
    my @e = map { auth_from($addr, 'unlock01', $wrong)->{json}{error} } 1 .. 6;
    is($e[5], 'locked', 'six wrong lock');
    my ($rc, $out) = $t->certgatectl('user', 'unlock', 'unlock01');
    is($rc, 0, 'certgatectl user unlock') or diag $out;
    $addr = fresh_addr();
    @e = map { auth_from($addr, 'unlock01', $wrong)->{json}{error} } 1 .. 6;
    is_deeply(\@e, [('bad_credentials') x 5, 'locked'], 'after unlock: locked again at exactly the 6th');

    # Three wrong, then an unlock by the bank: the streak starts from zero.
    $t->add_user('ORG001', 'unlock02', $pw);
    auth_from($addr, 'unlock02', $wrong) for 1 .. 3;
    ($rc, $out) = $t->certgatectl('user', 'unlock', 'unlock02');
    is($rc, 0, 'unlock with a streak of 3') or diag $out;
    $addr = fresh_addr();
    @e = map { auth_from($addr, 'unlock02', $wrong)->{json}{error} } 1 .. 6;
    is_deeply(\@e, [('bad_credentials') x 5, 'locked'], 'then locked at exactly the 6th');

    # A reset (new initial password) also starts a new streak.
    $t->add_user('ORG001', 'reset001', $pw);
    $addr = fresh_addr();
    auth_from($addr, 'reset001', $wrong) for 1 .. 3;
    ($rc, $out) = $t->certgatectl('user', 'reset', 'reset001');
    is($rc, 0, 'certgatectl user reset') or diag $out;
    $addr = fresh_addr();
    @e = map { auth_from($addr, 'reset001', $wrong)->{json}{error} } 1 .. 6;
    is_deeply(\@e, [('bad_credentials') x 5, 'locked'], 'after reset: locked at exactly the 6th');
};

$t->done;
done_testing;
