package Certgate::Bench::Fleet;

# Benchmark f of bench/run (issue 15, fleet mode): the suites' fleet
# (t/lib/Certgate/Fleet.pm: three nginx nodes on 127.0.0.2-4, one PostgreSQL
# store through t/lib/pgtmp, two memcached servers, the SMTP sink) and
#   1. revocation reach: `certgatectl cert revoke` against the shared store,
#      and when each node first refuses the revoked certificate's session, on
#      a connection kept alive from before the revocation and on new
#      connections (six pollers per revocation, all in parallel);
#   2. login and issuance throughput of the three nodes against one node of
#      the same fleet (same store, same memcached, same configuration),
#      interleaved F S S F F S, with the nodes' worker CPU and the store's
#      (PostgreSQL's) CPU per request.
# Bounded: fixed counts and durations, every child has an alarm, and
# everything started here is stopped at the end of run() (or by cleanup()
# when bench/run exits early).

use strict;
use utf8;
use warnings;

use Certgate::Fleet;
use Encode ();
use IO::Select;
use IO::Socket::SSL;
use JSON::PP ();
use MIME::Base64 ();
use POSIX ();
use Time::HiRes qw(sleep time);
use URI::Escape qw(uri_escape);

my $PW = 'Fleet#2026';    # R9
my $NAME = $Certgate::Fleet::NAME;
our $fleet;               # the running fleet, for cleanup()

sub say_ { print @_, "\n" }

# --- a small HTTP/1.1 client: keep-alive (or a new connection per request),
# its own cookie jar; answers { status, body, json, sent (when the request
# went out), error }.
sub client {
    my ($f, $i, %o) = @_;
    my $d = $f->dir;
    my $n = $f->node($i);
    my %jar;
    my $sock;
    my $open = sub {
        $sock = IO::Socket::SSL->new(
            PeerAddr => $n->host, PeerPort => $n->port('https'), Timeout => 30,
            SSL_ca_file => "$d/ca.crt", SSL_verifycn_name => $NAME, SSL_hostname => $NAME,
            ($o{cert} ? (SSL_cert_file => "$d/$o{cert}.crt", SSL_key_file => "$d/$o{cert}.key") : ()),
        );
        return $sock;
    };
    my $call = sub {
        my ($method, $path, $form) = @_;
        local $SIG{PIPE} = 'IGNORE';
        my $body = $form ? join('&', map { uri_escape($_) . '=' . uri_escape($form->{$_}) } sort keys %$form) : '';
        my $cookie = join '; ', map { "$_=$jar{$_}" } sort keys %jar;
        my $req = "$method $path HTTP/1.1\r\nHost: $NAME\r\nAccept: application/json\r\n"
            . ($cookie ne '' ? "Cookie: $cookie\r\n" : '')
            . ($method eq 'POST' ? "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
                . length($body) . "\r\n" : '')
            . ($o{fresh} ? "Connection: close\r\n" : '')
            . "\r\n$body";
        for my $try (1, 2) {
            if (!$sock) {
                $open->() or return { status => 0, error => "connect: $SSL_ERROR" };
            }
            my $sent = time;
            my $head = '';
            if (print $sock $req) {
                while (defined(my $line = <$sock>)) { $head .= $line; last if $line eq "\r\n" }
            }
            if ($head =~ m{^HTTP/1\.1 (\d+)}) {
                my $res = { status => $1, sent => $sent, body => '' };
                if ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
                    while (defined(my $size = <$sock>)) {
                        $size = hex($size =~ s/\s+$//r);
                        my $chunk = '';
                        while (length($chunk) < $size + 2) {
                            read($sock, $chunk, $size + 2 - length($chunk), length($chunk)) or last;
                        }
                        last unless $size;
                        $res->{body} .= substr($chunk, 0, $size);
                    }
                } elsif ($head =~ /^Content-Length:\s*(\d+)/mi) {
                    my $len = $1;
                    while (length($res->{body}) < $len) {
                        read($sock, $res->{body}, $len - length($res->{body}), length($res->{body})) or last;
                    }
                }
                for ($head =~ /^Set-Cookie:\s*([^\r\n]+)/mgi) {
                    my ($k, $v) = /^([^=;\s]+)=([^;]*)/ or next;
                    if ($v eq '' || /;\s*Max-Age=0\b/i) { delete $jar{$k} } else { $jar{$k} = $v }
                }
                if ($o{fresh} || $head =~ /^Connection:\s*close/mi) { close $sock; undef $sock }
                $res->{json} = eval { JSON::PP->new->decode($res->{body}) } || {};
                $res->{error} = $res->{json}{error} // ($res->{json}{ok} ? 'ok' : "status $res->{status}");
                return $res;
            }
            close $sock if $sock;
            undef $sock;
            return { status => 0, sent => $sent, error => 'connection closed' } if $o{fresh} || $o{no_retry};
        }
        return { status => 0, error => 'no answer' };
    };
    return { call => $call, jar => \%jar, reset => sub { %jar = () } };
}

# GET the login screen for the CSRF token (a new browser: empty jar), then
# POST /certgate/login with the client's certificate.
sub login_once {
    my ($c, $user) = @_;
    $c->{reset}->();
    my $g = $c->{call}->('GET', '/certgate/');
    return $g unless $g->{json}{csrf_token};
    return $c->{call}->('POST', '/certgate/login',
        { user_id => $user, password => $PW, csrf_token => $g->{json}{csrf_token} });
}

# The code of the auth-code mail to $user in the SMTP sink's Maildir; %$seen
# (per process) holds the files already read and not ours.
sub wait_code {
    my ($maildir, $user, $seen, $timeout) = @_;
    my $until = time + $timeout;
    while (time < $until) {
        for my $file (glob("$maildir/new/*"), glob("$maildir/cur/*")) {
            next if $seen->{$file};
            my $raw = Certgate::Test::read_file($file) // next;
            my ($head, $body) = split /\r?\n\r?\n/, $raw, 2;
            $head =~ s/\r?\n[ \t]+/ /g;
            unless ($head =~ /^To:\s*<?\Q$user\E\@/mi) { $seen->{$file} = 1; next }
            $body = MIME::Base64::decode_base64($body // '') if $head =~ /^Content-Transfer-Encoding:\s*base64/mi;
            $body = Encode::decode('UTF-8', $body // '');
            $seen->{$file} = 1;
            my ($code) = $body =~ /(?:認証コード：|Authentication code: )(\d{6,10})/;
            return $code if $code;
        }
        sleep 0.01;
    }
    return undef;
}

# ④ → ⑤ (the code from the mail) → ⑥ → ⑧ the .p12 download, on one
# connection; returns undef or what failed.
sub issue_once {
    my ($c, $user, $maildir, $seen) = @_;
    $c->{reset}->();
    my $g = $c->{call}->('GET', '/certgate/');
    my $token = $g->{json}{csrf_token} or return "GET /certgate/: $g->{error}";
    my $r = $c->{call}->('POST', '/certgate/issue', { user_id => $user, password => $PW, csrf_token => $token });
    return "④: $r->{error}" unless $r->{json}{ok};
    my $code = wait_code($maildir, $user, $seen, 30) // return '⑤: no code mail in 30 s';
    $r = $c->{call}->('POST', '/certgate/issue/code', { code => $code, csrf_token => $token });
    return "⑤: $r->{error}" unless $r->{json}{ok};
    $r = $c->{call}->('POST', '/certgate/issue/confirm', { csrf_token => $token });
    return "⑥: $r->{error}" unless $r->{json}{ok} && $r->{json}{download};
    $r = $c->{call}->('GET', $r->{json}{download});
    return "⑧: status $r->{status}" unless $r->{status} == 200 && length $r->{body};
    return undef;
}

# --- processes ---------------------------------------------------------------------

# A child that runs $code and leaves with _exit (no END blocks, no DESTROY:
# the parent's fleet and bench/run's services stay up), within $limit s.
sub child {
    my ($started, $name, $limit, $code) = @_;
    # INT and TERM wait until the child is recorded (bench/run's handler
    # dies; in the child it would run the parent's code).
    my $block = POSIX::SigSet->new(POSIX::SIGINT(), POSIX::SIGTERM());
    my $old = POSIX::SigSet->new;
    POSIX::sigprocmask(POSIX::SIG_BLOCK(), $block, $old);
    my $pid = fork();
    if (defined $pid && $pid == 0) {
        $SIG{ALRM} = sub { POSIX::_exit(3) };
        $SIG{INT} = $SIG{TERM} = 'DEFAULT';
        POSIX::sigprocmask(POSIX::SIG_SETMASK(), $old);
        alarm $limit;
        my $ok = eval { $code->(); 1 };
        print STDERR "bench: $name: $@" unless $ok;
        POSIX::_exit($ok ? 0 : 1);
    }
    $started->{$name} = $pid if $pid;
    POSIX::sigprocmask(POSIX::SIG_SETMASK(), $old);
    die "fork: $!" unless defined $pid;
    return $pid;
}

sub reap {
    my ($started, $name) = @_;
    my $pid = delete $started->{$name} or return;
    waitpid($pid, 0);
    return $? >> 8;
}

# Reads $n bytes (one per child that is ready) from $rd within $timeout s.
sub wait_ready {
    my ($rd, $n, $timeout) = @_;
    my $sel = IO::Select->new($rd);
    my $until = time + $timeout;
    my $got = 0;
    while ($got < $n) {
        my $left = $until - time;
        return 0 if $left <= 0 || !$sel->can_read($left);
        my $r = sysread($rd, my $buf, 64);
        return 0 unless $r;
        $got += $r;
    }
    return 1;
}

# CPU seconds per process (utime + stime, all threads), for the pids given.
sub cpu_snapshot {
    my %cpu;
    my $tck = POSIX::sysconf(POSIX::_SC_CLK_TCK());
    for my $pid (@_) {
        my $s = Certgate::Test::read_file("/proc/$pid/stat") // next;
        my ($rest) = $s =~ /^\d+ \(.*?\) (.*)$/s or next;
        my @f = split ' ', $rest;
        $cpu{$pid} = ($f[11] + $f[12]) / $tck;
    }
    return \%cpu;
}

# What ran between two snapshots (a process new in $b counts from zero).
sub cpu_delta {
    my ($a, $b) = @_;
    my $sum = 0;
    $sum += $b->{$_} - ($a->{$_} // 0) for keys %$b;
    return $sum;
}

# The machine's busy CPU seconds so far, all cores (/proc/stat: every
# column but idle and iowait).
sub machine_busy {
    my ($cpu) = (Certgate::Test::read_file('/proc/stat') // '') =~ /^cpu\s+([^\n]+)/ or return 0;
    my @v = split ' ', $cpu;
    my $busy = 0;
    $busy += $v[$_] // 0 for 0 .. 2, 5 .. 7;    # user nice system irq softirq steal
    return $busy / POSIX::sysconf(POSIX::_SC_CLK_TCK());
}

sub children_of {
    my ($parent) = @_;
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = Certgate::Test::read_file($stat) // next;
        my ($pid, $rest) = $s =~ /^(\d+) \(.*?\) (.*)$/s or next;
        push @pids, $pid if (split ' ', $rest)[1] == $parent;
    }
    return @pids;
}

sub node_workers { my ($f, @nodes) = @_; return map { children_of($f->node($_)->{pids}{nginx}) } @nodes }

# PostgreSQL: the postmaster and every process under it (backends, writers).
sub store_pids {
    my ($f) = @_;
    return () unless $f->{pg};
    my ($pm) = (Certgate::Test::read_file("$f->{pg}/data/postmaster.pid") // '') =~ /^(\d+)/ or return ();
    return ($pm, children_of($pm));
}

# --- statistics ------------------------------------------------------------------------

sub pct {
    my ($p, @v) = @_;
    @v = sort { $a <=> $b } @v;
    return undef unless @v;
    my $k = POSIX::ceil($p * @v) - 1;
    return $v[$k < 0 ? 0 : $k];
}
sub median { return pct(0.5, @_) }
sub mean { my $s = 0; $s += $_ for @_; return @_ ? $s / @_ : 0 }

# --- the benchmark -----------------------------------------------------------------------

# Everything started is stopped when run() fails too, before bench/run
# leaves: File::Temp's END (which removes the fleet's directory, the
# PostgreSQL data with it) runs before bench/run's.
sub run {
    my (%o) = @_;
    my $fig = eval { measure(%o) };
    return $fig if $fig;
    my $err = $@;
    # Its children first: they use the fleet's directory.
    for my $name (grep { /^fleet-/ } keys %{$o{started}}) {
        kill 'KILL', $o{started}{$name};
        reap($o{started}, $name);
    }
    cleanup();
    die $err;
}

sub measure {
    my (%o) = @_;
    my $started = $o{started};
    my $quick = $o{quick};
    my $revocations = $quick ? 3 : 30;
    my $clients = 6;                         # throughput: 2 per node in the fleet
    my $rounds = $quick ? 1 : 3;             # F S, S F, F S
    my $login_s = $quick ? 2 : 6;            # seconds per login run
    my $issues = $quick ? 6 : 30;            # issuances per run (5 per client)
    my $began = time;
    my %fig = (revocations => $revocations, clients => $clients, rounds => $rounds, login_s => $login_s,
        issues => $issues, load_start => $o{load}->());

    # Warnings and worse only: the suites' debug log would be the benchmark.
    local $ENV{CERTGATE_LOG_LEVEL} = 'warn';
    say_("  starting the fleet: PostgreSQL (t/lib/pgtmp), 2 memcached, SMTP sink, 3 nodes x 2 workers");
    my $f = $fleet = Certgate::Fleet->new;
    my $d = $f->dir;
    mkdir "$d/app";
    Certgate::Test::write_file("$d/app/x", "business app\n");
    $f->{workers} = 2;
    for my $n ($f->nodes) {
        my $conf = $n->write_conf($f->fleet_conf, workers => 2);
        # As in the other benchmarks: no access log (the same for both sides).
        my $text = Certgate::Test::read_file($conf);
        $text =~ s{access_log \S+;}{access_log off;};
        Certgate::Test::write_file($conf, $text);
        $n->start_nginx;
    }
    ($fig{pg_version}) = `/usr/lib/postgresql/15/bin/postgres --version 2>/dev/null` =~ /(\d+\.\d+)/;
    $fig{pg_version} //= '15';
    ($fig{sync_interval}) = Certgate::Test::read_file($f->node(1)->prefix . '/nginx.conf') =~ /certgate_sync_interval\s+(\S+);/;
    ($fig{key_type}) = Certgate::Test::read_file($f->node(1)->prefix . '/nginx.conf') =~ /certgate_key_type\s+(\S+);/;
    $f->add_org('ORG001');

    # Users made ahead: certificates (openssl ca, one at a time: it keeps an
    # index) for revocation and login users; issuance users in two processes.
    my $prep0 = time;
    my (@rev, @login);
    for my $k (1 .. $revocations) {
        my $u = sprintf 'revoke%03d', $k;
        $f->add_user('ORG001', $u, $PW);
        my $name = $f->client_cert_until($u, time + 86400, store_user => $u, name => $u);
        my $serial = Certgate::Test::openssl('x509', '-noout', '-serial', '-in', "$d/$name.crt") =~ s/^serial=|\s+//gr;
        push @rev, [$u, $name, $serial];
    }
    for my $c (1 .. $clients) {
        my $u = sprintf 'login%03d', $c;
        $f->add_user('ORG001', $u, $PW);
        push @login, [$u, $f->client_cert_until($u, time + 86400, store_user => $u, name => $u)];
    }
    my @issue_users = map { sprintf 'issue%04d', $_ } 1 .. 2 * $rounds * $issues + $clients;
    for my $half (0, 1) {
        child($started, "fleet-prep$half", 300, sub {
            for my $i (grep { $_ % 2 == $half } 0 .. $#issue_users) { $f->add_user('ORG001', $issue_users[$i], $PW) }
        });
    }
    for my $half (0, 1) { reap($started, "fleet-prep$half") == 0 or die "bench: adding the issuance users failed\n" }
    $fig{prep_s} = time - $prep0;
    printf "  %d + %d users with certificates and %d issuance users made in %.0f s\n",
        $revocations, $clients, scalar @issue_users, $fig{prep_s};

    # 1. Revocation reach.
    printf "\n  revocation reach: %d revocations, each polled on 3 nodes x (kept-alive, new connection)\n",
        $revocations;
    my (%reach, @ctl, %refusals);
    for my $k (1 .. $revocations) {
        my ($user, $cert, $serial) = @{$rev[$k - 1]};
        my $lc = client($f, 1, cert => $cert);
        my $r = login_once($lc, $user);
        die "bench: $user: login on node 1: $r->{error}\n" unless $r->{json}{ok};
        my $cookie = { '__Host-certgate_session' => $lc->{jar}{'__Host-certgate_session'} // die "bench: no session\n" };
        pipe(my $rd, my $wr) or die "pipe: $!";
        my @polls;
        for my $node (1 .. 3) {
            for my $kind (qw(kept new)) {
                my $out = "$d/reach-$k-$node-$kind";
                my $name = "fleet-poll-$node-$kind";
                child($started, $name, 40, sub {
                    close $rd;
                    my $c = client($f, $node, cert => $cert, fresh => $kind eq 'new', no_retry => 1);
                    %{$c->{jar}} = %$cookie;
                    my $p = $c->{call}->('GET', '/app/x');
                    die "node $node ($kind): $p->{error} before the revocation\n" unless $p->{status} == 200;
                    syswrite $wr, 'r';
                    my $until = time + 15;
                    my $line = 'timeout';
                    while (time < $until) {
                        $p = $c->{call}->('GET', '/app/x');
                        if ($p->{status} != 200) { $line = "$p->{sent} $p->{status} $p->{error}"; last }
                        sleep 0.01;
                    }
                    Certgate::Test::write_file($out, "$line\n");
                });
                push @polls, [$name, $node, $kind, $out];
            }
        }
        close $wr;
        unless (wait_ready($rd, scalar @polls, 30)) {
            reap($started, $_->[0]) for @polls;
            die "bench: the pollers of $user did not all pass before the revocation\n";
        }
        close $rd;
        my $t0 = time;
        my ($rc, $out) = $f->certgatectl('cert', 'revoke', $serial, '--reason', 'keyCompromise');
        my $t1 = time;
        die "bench: certgatectl cert revoke $serial: $out\n" if $rc;
        push @ctl, $t1 - $t0;
        my @line;
        for my $p (@polls) {
            my ($name, $node, $kind, $file) = @$p;
            reap($started, $name);
            my $res = Certgate::Test::read_file($file) // 'no result';
            my ($sent, $status, $error) = $res =~ /^([\d.]+) (\d+) (\S+)/;
            if (defined $sent) {
                # From the command's start (the operator's view, the command
                # included) and from its return (the commit is done by then;
                # as t/fleet.t measures; below 0 when refused before the
                # process had exited).
                push @{$reach{$kind}}, $sent - $t0;
                push @{$reach{"$kind-done"}}, $sent - $t1;
                push @{$reach{"$kind-$node"}}, $sent - $t1;
                $refusals{"$status $error"}++;
                push @line, sprintf('%d%s %.3f', $node, $kind eq 'kept' ? 'k' : 'n', $sent - $t0);
            } else {
                chomp $res;
                $refusals{"never ($res)"}++;
                push @{$reach{"$kind-missed"}}, $node;
                push @line, sprintf('%d%s never', $node, $kind eq 'kept' ? 'k' : 'n');
            }
        }
        printf "  %2d %s: certgatectl %.2f s; first refusal (s after it started): %s\n", $k, $user, $t1 - $t0,
            join(', ', @line) if $k <= 3 || $k == $revocations || $o{verbose} || $t1 - $t0 > 1
            || grep { /never|\s([1-9]|\d\d)\./ } @line;
    }
    $fig{reach} = \%reach;
    $fig{ctl} = \@ctl;
    $fig{refusals} = \%refusals;
    for my $kind (qw(kept new)) {
        my @v = @{$reach{$kind} || []};
        my @w = @{$reach{"$kind-done"} || []};
        my $missed = @{$reach{"$kind-missed"} || []};
        printf "  %-22s n=%d  from the command's start: p50 %.3f s p99 %.3f s max %.3f s;"
            . " from its return: p50 %.3f s p99 %.3f s max %.3f s, within 2 s: %d of %d%s\n",
            $kind eq 'kept' ? 'kept-alive connection:' : 'new connections:', scalar @v, median(@v) // 0,
            pct(0.99, @v) // 0, pct(1, @v) // 0, median(@w) // 0, pct(0.99, @w) // 0, pct(1, @w) // 0,
            scalar(grep { $_ <= 2 } @w), @w + $missed, $missed ? " ($missed never refused in 15 s)" : '';
    }
    printf "  certgatectl cert revoke itself: median %.2f s, max %.2f s; refusals: %s\n", median(@ctl),
        pct(1, @ctl), join(', ', map { "$_ x $refusals{$_}" } sort keys %refusals);

    # 2. Throughput: F = the three nodes (client c on node c mod 3), S = node 1 alone.
    # W: a warm-up on the three nodes, not counted (the pool threads' first
    # connections to PostgreSQL, the caches of its new backends).
    my %modes = (F => [1, 2, 3], S => [1], W => [1, 2, 3]);
    my @order = ('W', map { $_ % 2 ? ('F', 'S') : ('S', 'F') } 1 .. $rounds);
    my $maildir = "$d/maildir";
    my $next_user = 0;
    my @runs;
    for my $what (qw(login issue)) {
        printf "\n  %s throughput, %d clients (keep-alive), %s: F = 3 nodes, S = node 1 alone\n", $what, $clients,
            $what eq 'login' ? "$login_s s per run" : "$issues issuances per run";
        for my $i (0 .. $#order) {
            my $mode = $order[$i];
            my @nodes = @{$modes{$mode}};
            pipe(my $rd, my $wr) or die "pipe: $!";
            pipe(my $go_rd, my $go_wr) or die "pipe: $!";
            my @kids;
            my $count = $mode eq 'W' ? $clients : $issues;    # issuances in this run
            my $duration = $mode eq 'W' ? 2 : $login_s;         # seconds of logins
            my @users;
            if ($what eq 'issue') {
                @users = @issue_users[$next_user .. $next_user + $count - 1];
                $next_user += $count;
            }
            for my $c (0 .. $clients - 1) {
                my $node = $nodes[$c % @nodes];
                my $out = "$d/tput-$what-$i-$c";
                my $name = "fleet-client-$c";
                child($started, $name, 120, sub {
                    close $rd;
                    close $go_wr;
                    my $cl = client($f, $node, cert => $what eq 'login' ? $login[$c][1] : undef);
                    my $g = $cl->{call}->('GET', '/certgate/');    # connected
                    die "node $node: GET /certgate/: $g->{error}\n" unless $g->{status} == 200;
                    syswrite $wr, 'r';
                    sysread $go_rd, my $b, 1;    # EOF: the parent opened the gate
                    my (@lat, %err);
                    my $t0 = time;
                    if ($what eq 'login') {
                        while (time - $t0 < $duration) {
                            my $s = time;
                            my $r = login_once($cl, $login[$c][0]);
                            if ($r->{json}{ok}) { push @lat, time - $s } else { $err{$r->{error}}++ }
                        }
                    } else {
                        my %seen;
                        for my $u (@users[grep { $_ % $clients == $c } 0 .. $#users]) {
                            my $s = time;
                            my $e = issue_once($cl, $u, $maildir, \%seen);
                            if (defined $e) { $err{$e}++ } else { push @lat, time - $s }
                        }
                    }
                    Certgate::Test::write_file($out, join(' ', time, @lat) . "\n"
                        . join("\n", map { "$err{$_}\t$_" } keys %err) . "\n");
                });
                push @kids, [$name, $out];
            }
            close $wr;
            close $go_rd;
            unless (wait_ready($rd, $clients, 60)) {
                close $go_wr;
                reap($started, $_->[0]) for @kids;
                die "bench: the $what clients did not all connect\n";
            }
            my @workers = node_workers($f, @nodes);
            my @store = store_pids($f);
            my ($w0, $s0, $m0) = (cpu_snapshot(@workers), cpu_snapshot(@store), machine_busy());
            my $t0 = time;
            close $go_wr;    # go
            reap($started, $_->[0]) for @kids;
            my ($w1, $s1, $m1) = (cpu_snapshot(@workers), cpu_snapshot(store_pids($f)), machine_busy());
            my (@lat, %err, $end);
            $end = $t0;
            for my $k (@kids) {
                my ($first, @err) = split /\n/, Certgate::Test::read_file($k->[1]) // "0\n";
                my ($t, @l) = split ' ', $first;
                $end = $t if $t > $end;
                push @lat, @l;
                for (@err) { my ($n, $e) = split /\t/; $err{$e} += $n if $e }
            }
            my $wall = $what eq 'login' ? $duration : $end - $t0;    # issuance: until the last one finished
            my $wall_cpu = time - $t0;
            my $n = @lat;
            my $run = { what => $what, mode => $mode, ok => $n, errors => \%err, wall => $wall,
                rate => $wall > 0 ? $n / $wall : 0,
                worker_ms => $n ? 1000 * cpu_delta($w0, $w1) / $n : 0,
                store_ms => $n ? 1000 * cpu_delta($s0, $s1) / $n : 0,
                busy => $wall_cpu > 0 ? cpu_delta($w0, $w1) / $wall_cpu : 0,
                machine => $wall_cpu > 0 ? ($m1 - $m0) / $wall_cpu : 0,
                p50 => median(@lat) // 0, p99 => pct(0.99, @lat) // 0, workers => scalar @workers };
            if ($mode eq 'W') {
                printf "  %s warm-up on the 3 nodes: %d in %.1f s (not counted)\n", $what, $n, $wall;
                next;
            }
            push @runs, $run;
            printf "  %s %s: %4d in %5.1f s = %6.1f/s  latency p50 %.3f s p99 %.3f s  worker CPU %.1f ms, "
                . "store %.1f ms per %s (workers busy %.2f cores, the machine %.2f)%s\n", $what, $mode, $n, $wall,
                $run->{rate}, $run->{p50}, $run->{p99}, $run->{worker_ms}, $run->{store_ms}, $what, $run->{busy},
                $run->{machine},
                %err ? '  errors: ' . join(', ', map { "$_ x $err{$_}" } sort keys %err) : '';
        }
        my %s;
        for my $m (qw(F S)) {
            my @r = grep { $_->{what} eq $what && $_->{mode} eq $m } @runs;
            $s{$m} = { rate => median(map { $_->{rate} } @r), worker_ms => median(map { $_->{worker_ms} } @r),
                store_ms => median(map { $_->{store_ms} } @r), p50 => median(map { $_->{p50} } @r),
                p99 => median(map { $_->{p99} } @r), ok => 0, err_n => 0 };
            $s{$m}{ok} += $_->{ok} for @r;
            for my $r (@r) { $s{$m}{err_n} += $_ for values %{$r->{errors}} }
        }
        $s{ratio} = $s{S}{rate} ? $s{F}{rate} / $s{S}{rate} : 0;
        $s{cpu_ratio} = $s{S}{worker_ms} ? $s{F}{worker_ms} / $s{S}{worker_ms} : 0;
        printf "  %s: F/S throughput %.2f; worker CPU per %s F %.1f ms, S %.1f ms (F/S %.2f)\n", $what,
            $s{ratio}, $what, $s{F}{worker_ms}, $s{S}{worker_ms}, $s{cpu_ratio};
        $fig{tput}{$what} = \%s;
    }
    $fig{runs} = \@runs;
    ($fig{pg_backends}) = eval { $f->sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'") } // '?';
    chomp $fig{pg_backends};
    printf "  PostgreSQL client connections at the end: %s\n", $fig{pg_backends};

    # Stop everything of the fleet; its logs must be clean.
    my @bad = $f->stop_all;
    warn "bench: the fleet logged:\n" . join("\n", @bad) . "\n" if @bad;
    $fig{bad_logs} = scalar @bad;
    $f->destroy_store;
    undef $fleet;
    $fig{took} = time - $began;
    $fig{load_end} = $o{load}->();
    printf "\n  fleet benchmark took %.0f s\n", $fig{took};
    return \%fig;
}

sub cleanup {
    return unless $fleet;
    $fleet->DESTROY;
    undef $fleet;
}

# --- the page -------------------------------------------------------------------------

# The section of the page; %m: bench/run's machine() (the run's date, the
# machine, the commit), for a section that is read apart from the others.
sub markdown {
    my ($g, %m) = @_;
    my $md = "\n### Fleet: revocation reach and login/issuance throughput\n\n";
    $md .= "Run of $m{date} on $m{cpus} CPUs ($m{cpu}), $m{kernel}; $m{nginx}; PostgreSQL "
        . "$g->{pg_version}; certgate $m{commit}.\n\n" if %m;
    $md .= sprintf "Three nodes (nginx, 2 workers each, on 127.0.0.2-4) on one PostgreSQL 15 store, two "
        . "memcached servers, `certgate_sync_interval %s`, `certgate_key_type %s`; all on the same 2 shared "
        . "cores as the load. The fleet part took %.0f s (%.0f s of it making users); load average "
        . "at its start %s, at its end %s.\n\n", $g->{sync_interval} // '?', $g->{key_type} // '?', $g->{took},
        $g->{prep_s}, $g->{load_start}, $g->{load_end};
    my ($r, $ctl) = ($g->{reach}, $g->{ctl});
    $md .= sprintf "**Revocation reach** (target: refused on every node within 2 s): %d revocations by "
        . "`certgatectl cert revoke`, each watched on the 3 nodes on a connection kept alive from before "
        . "and on new connections, so %d samples per kind. Seconds to the first refused request (its "
        . "send time; polls 10 ms apart) from the command's return, as `t/fleet.t` measures (the "
        . "revocation is committed by then; below 0 when a node refused before the process had "
        . "exited), and from the command's start (the command included).\n\n",
        $g->{revocations}, 3 * $g->{revocations};
    $md .= "| connection | samples | from the return: p50 / p99 / max s | node 1 / 2 / 3 p50 s | within 2 s of the return | from the start: p50 / p99 / max s | within 2 s of the start |\n"
        . "|---|---:|---:|---:|---:|---:|---:|\n";
    for my $kind (qw(kept new)) {
        my @v = @{$r->{$kind} || []};
        my @w = @{$r->{"$kind-done"} || []};
        my $missed = @{$r->{"$kind-missed"} || []};
        my $within = grep { $_ <= 2 } @w;
        my $within_start = grep { $_ <= 2 } @v;
        $md .= sprintf "| %s | %d | %.3f / %.3f / %.3f | %s | %d of %d %s | %.3f / %.3f / %.3f | %d of %d |\n",
            $kind eq 'kept' ? 'kept alive (opened before the revocation)' : 'new (one TLS handshake per poll)',
            scalar @v, median(@w) // 0, pct(0.99, @w) // 0, pct(1, @w) // 0,
            join(' / ', map { sprintf '%.3f', median(@{$r->{"$kind-$_"} || []}) // 0 } 1 .. 3),
            $within, @w + $missed, $within == @w + $missed ? 'met' : '**missed**',
            median(@v) // 0, pct(0.99, @v) // 0, pct(1, @v) // 0, $within_start, @v + $missed;
    }
    $md .= sprintf "\n`certgatectl cert revoke` itself (process start, store, commit): median %.2f s, max "
        . "%.2f s. Refusals seen: %s.\n\n", median(@$ctl), pct(1, @$ctl),
        join(', ', map { "`$_` × $g->{refusals}{$_}" } sort keys %{$g->{refusals}});
    $md .= sprintf "**Login and issuance throughput**, 3 nodes (F) against node 1 of the same fleet alone "
        . "(S), %d closed-loop clients on keep-alive connections (in F client *c* talks to node *c* mod 3), "
        . "order %s. A login is `GET /certgate/` (CSRF token) + `POST /certgate/login` with the user's "
        . "certificate, for %d s per run; an issuance is ④ `POST /certgate/issue` → the code from the "
        . "mail → ⑤ → ⑥ → the .p12 download, %d per run, each by a user made for it. Worker CPU per "
        . "request: the serving nodes' nginx workers (their thread pools included); store CPU: every "
        . "PostgreSQL process. One untimed warm-up on the three nodes comes first (2 s of logins, "
        . "$g->{clients} issuances). PostgreSQL had $g->{pg_backends} client connections at the end "
        . "(the nodes' pool threads, one each, and this script's).\n\n", $g->{clients},
        join(' ', map { $_ % 2 ? ('F S') : ('S F') } 1 .. $g->{rounds}), $g->{login_s}, $g->{issues};
    $md .= "| | F: 3 nodes /s | S: 1 node /s | F/S | latency p50 / p99 s F · S | worker CPU per request ms F / S (F/S) | store CPU per request ms F / S | errors F / S |\n"
        . "|---|---:|---:|---:|---:|---:|---:|---:|\n";
    for my $what (qw(login issue)) {
        my $s = $g->{tput}{$what};
        $md .= sprintf "| %s | %.1f | %.1f | %.2f | %.3f / %.3f · %.3f / %.3f | %.1f / %.1f (%.2f) | %.1f / %.1f | %d / %d |\n",
            $what eq 'login' ? 'logins' : 'issuances', $s->{F}{rate}, $s->{S}{rate}, $s->{ratio},
            $s->{F}{p50}, $s->{F}{p99}, $s->{S}{p50}, $s->{S}{p99},
            $s->{F}{worker_ms}, $s->{S}{worker_ms}, $s->{cpu_ratio}, $s->{F}{store_ms}, $s->{S}{store_ms},
            $s->{F}{err_n}, $s->{S}{err_n};
    }
    $md .= "\nEvery run (busy cores: the serving workers' CPU, and the whole machine's, other helpers' "
        . "processes included, over the run's wall time; 2 cores in all):\n\n```\n";
    for my $run (@{$g->{runs}}) {
        $md .= sprintf "%-5s %s: %4d in %5.1f s = %6.1f/s  p50 %.3f s  p99 %.3f s  worker CPU %.1f ms  store %.1f ms  "
            . "busy cores: workers %.2f, machine %.2f%s\n",
            $run->{what}, $run->{mode}, $run->{ok}, $run->{wall}, $run->{rate}, $run->{p50}, $run->{p99},
            $run->{worker_ms}, $run->{store_ms}, $run->{busy}, $run->{machine},
            %{$run->{errors}} ? '  errors: ' . join(', ', map { "$_ × $run->{errors}{$_}" } sort keys %{$run->{errors}}) : '';
    }
    $md .= "```\n";
    $md .= "\nThe fleet's logs held [alert], [emerg] or [crit] lines (printed by bench/run).\n" if $g->{bad_logs};
    return $md;
}

1;
