# Store and outbox hygiene (issue 13.7): the store's files are not readable by
# others whatever the umask (and nginx -t warns about one that is); a code
# mail's body leaves the outbox once delivered or expired; a slow relay gets
# each mail once; a hung relay stalls neither /health nor ④ for others.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use Certgate::Test;

umask 022;
my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $d = $t->dir;
my $conf = <<'EOF';
    %%CERTGATE%%
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
    }
EOF
$t->write_conf($conf);
$t->start_nginx;
$t->add_org('ORG001');
my $pw = 'Passw0rd!';
my @users = map { sprintf('mail%04d', $_) } 1 .. 40;
$t->add_user('ORG001', $_, $pw) for @users;

sub mode_of { sprintf '%04o', (stat $_[0])[2] & 07777 }

subtest 'the store files are not readable by others under umask 022' => sub {
    my $r = $t->submit('/certgate/issue', { user_id => 'mail0001', password => $pw });
    ok($r->{json}{ok}, 'a ④ writes the store (WAL)');
    for my $f ("$d/certgate.db", "$d/certgate.db-wal", "$d/certgate.db-shm") {
        ok(-e $f, "$f exists") or next;
        is((stat $f)[2] & 0007, 0, "$f: no access for others (" . mode_of($f) . ')');
    }
    chmod 0644, "$d/certgate.db";
    my ($rc, $out) = $t->nginx_t;
    $out .= Certgate::Test::read_file("$d/logs/error-t.log") // '';
    is($rc, 0, 'nginx -t still passes with a store readable by others');
    like($out, qr/\[warn\].*certgate\.db has mode 0644.*chmod 0600/, 'but warns, saying what to do') or diag $out;
    chmod 0600, "$d/certgate.db";
};

subtest 'a sent code mail: its body is wiped from the outbox, the row stays' => sub {
    my $r = $t->submit('/certgate/issue', { user_id => 'mail0002', password => $pw });
    ok($r->{json}{ok}, '④ mails a code');
    ok($t->code_for('mail0002'), 'the code arrived');
    my $row = $t->sql("SELECT state || '|' || length(body) || '|' || subject FROM outbox WHERE recipient = 'mail0002\@example.test'");
    like($row, qr/^sent\|0\|/, 'sent, body empty') or diag $row;
    like($row, qr/\|\S/, 'the subject (metadata) stays');
};

subtest 'a code mail that expired before delivery is wiped and never sent' => sub {
    $t->stop_smtp;
    my $r = $t->submit('/certgate/issue', { user_id => 'mail0003', password => $pw });
    my ($id, $len) = split /\|/, $t->sql("SELECT id || '|' || length(body) FROM outbox WHERE recipient = 'mail0003\@example.test'");
    chomp $len;
    ok($len > 0, 'the code waits in the outbox');
    # Its code's lifetime is over and its retry is due.
    $t->sql("UPDATE outbox SET expires_at = " . (int(time) - 1) . ", next_attempt_at = 0 WHERE id = $id");
    $t->start_smtp;
    my $row;
    for (1 .. 40) {
        $row = $t->sql("SELECT state || '|' || length(body) || '|' || last_error FROM outbox WHERE id = $id");
        last if $row =~ /^failed/;
        sleep 0.1;
    }
    like($row, qr/^failed\|0\|expired before delivery/, 'failed as expired, body wiped') or diag $row;
    sleep 1.2;
    ok(!grep({ ($_->{to} // '') =~ /^mail0003\@/ } $t->decoded_mails), 'and never sent');
};

# A relay that takes its time: `slow N` answers the end of DATA after N
# seconds (having received the message), `hung` never says anything.
Certgate::Test::write_file("$d/relay.py", <<'EOF');
import socket, sys, threading, time, os
port, mode, arg, out = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
n = [0]
lock = threading.Lock()
def serve(c):
    f = c.makefile('rb')
    def say(s):
        try: c.sendall(s.encode() + b"\r\n")
        except OSError: pass
    if mode == 'hung':
        time.sleep(3600); return
    say("220 slow.test ESMTP")
    while True:
        line = f.readline()
        if not line: return
        cmd = line.decode(errors='replace').strip().upper()
        if cmd.startswith('EHLO') or cmd.startswith('HELO'): say("250 slow.test")
        elif cmd.startswith('MAIL') or cmd.startswith('RCPT') or cmd.startswith('RSET') or cmd.startswith('NOOP'): say("250 ok")
        elif cmd == 'DATA':
            say("354 go on")
            data = b''
            while True:
                l = f.readline()
                if not l or l == b".\r\n": break
                data += l
            with lock:
                n[0] += 1
                k = n[0]
            open(os.path.join(out, "msg-%d-%d" % (os.getpid(), k)), 'wb').write(data)
            time.sleep(arg)
            say("250 queued")
        elif cmd == 'QUIT': say("221 bye"); return
        else: say("502 what")
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', port)); s.listen(200)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF

sub start_relay {
    my ($mode, $arg) = @_;
    $t->stop_smtp;
    $t->stop('relay');
    mkdir "$d/relay-out";
    unlink glob("$d/relay-out/*");
    $t->spawn('relay', '/usr/bin/python3', "$d/relay.py", $t->port('smtp'), $mode, $arg, "$d/relay-out");
    $t->wait_port($t->port('smtp'), 'the test relay');
}

sub relay_copies {
    my ($user) = @_;
    my @ids;
    for my $f (glob("$d/relay-out/*")) {
        my $m = Certgate::Test::read_file($f);
        next unless $m =~ /^To: \Q$user\E\@/mi;
        my ($id) = $m =~ /^Message-ID: (\S+)/mi;
        push @ids, $id;
    }
    return @ids;
}

subtest 'a slow relay (DATA answered after 12 s) gets the mail once' => sub {
    start_relay('slow', 12);
    my $start = time;
    my $r = $t->submit('/certgate/issue', { user_id => 'mail0004', password => $pw });
    my $took = time - $start;
    cmp_ok($took, '<', 8, sprintf('④ does not wait for the relay beyond the inline bound (%.1f s)', $took));
    my @copies;
    for (1 .. 160) {
        @copies = relay_copies('mail0004');
        last if time - $start > 14;
        sleep 0.1;
    }
    is(scalar @copies, 1, 'the relay received one copy') or diag explain \@copies;
    my $row = $t->sql("SELECT state || '|' || last_error FROM outbox WHERE recipient = 'mail0004\@example.test'");
    like($row, qr/^failed\|.*may have been delivered/, 'not queued for a blind resend: failed, saying why') or diag $row;
};

subtest 'a hung relay: /health answers at once, ④ for others is bounded' => sub {
    start_relay('hung', 0);
    my $start = time;
    my @kids;
    for my $u (@users[4 .. 39]) {
        my $jar = $t->jar;    # made here: a forked child's counter would repeat
        my $pid = fork // die;
        if ($pid == 0) {
            my $r = $t->submit('/certgate/issue', { user_id => $u, password => $pw }, jar => $jar);
            Certgate::Test::write_file("$d/batch-$u", sprintf("%s %.2f %s\n", $r->{status}, $r->{time} // 99, $r->{json}{error} // 'none'));
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    # Today's relay timeout is 10 s: a pool thread stuck on the relay shows
    # as 10 s. The bounds below leave room for this machine's CPU (36 TLS
    # clients and argon2 hashes on two shared cores), not for the relay.
    my $worst = 0;
    for (1 .. 4) {
        sleep 1;
        my $h = $t->get('/certgate/health', timeout => 20);
        $worst = $h->{time} if $h->{time} > $worst;
    }
    cmp_ok($worst, '<', 3, sprintf('/health answers while 36 ④ meet the hung relay (slowest %.2f s)', $worst));
    waitpid($_, 0) for @kids;
    my @times = map { (split / /, Certgate::Test::read_file("$d/batch-$_") // '0 99')[1] } @users[4 .. 39];
    my ($max) = sort { $b <=> $a } @times;
    cmp_ok($max, '<', 9, sprintf('every ④ answered within 9 s (the 4 s inline bound + closing + CPU; slowest %.1f s)', $max));
    # ⑤ either way: the code went, or it waits in the outbox (mail_not_sent).
    my $ok = grep { /^(200 \S+ none|503 \S+ mail_not_sent)$/ } map { Certgate::Test::read_file("$d/batch-$_") // '' } @users[4 .. 39];
    is($ok, 36, 'every ④ passed on to ⑤');
    my ($tried, $waiting) = split /\|/, $t->sql("SELECT sum(attempts > 0) || '|' || count(*) FROM outbox WHERE state IN ('queued', 'sending') AND recipient LIKE 'mail00%'");
    chomp $waiting;
    cmp_ok($tried, '<=', 8, "at most a few ④ waited on the relay at once ($tried of 36 tried it inline)");
    cmp_ok($waiting, '>=', 30, "the codes wait in the outbox ($waiting)");
    $t->stop('relay');
};

$t->done;
done_testing;
