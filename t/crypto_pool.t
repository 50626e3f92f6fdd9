# certgate_crypto_thread_pool: argon2, key generation and signing run in a
# pool of their own, so a task that only talks to memcached and the store
# (the health probe, a GET of a screen) never queues behind them; without the
# directive both kinds share certgate_thread_pool, and they do queue. The
# crypto threads run at SCHED_BATCH, nice 19; the I/O threads at nice 10.
# Test builds hold a crypto task with /certgate/health?crypto=1&delay=MS.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX qw(:sys_wait_h);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
mkdir $t->dir . '/app';
Certgate::Test::write_file($t->dir . '/app/index.html', "app\n");

sub start {
    my (%o) = @_;
    my $crypto = $o{crypto} ? "    certgate_crypto_thread_pool certgate_crypto;\n" : '';
    $t->write_conf(<<"EOF", workers => 1, main => $o{main});
    %%CERTGATE%%
    certgate_thread_pool certgate_io;
    # EC keys: the crypto thread runs at nice 19, which a busy test machine
    # leaves little CPU; the routing is what this suite shows.
    certgate_key_type ec:P-256;
$crypto    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location /certgate/ { certgate_portal; }
    }
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ { certgate_require; root %%DIR%%; }
    }
EOF
    $t->start_nginx;
}

my $port = $t->port('http');

# A request in a child process; returns its pid. The child exits 0 on a 200.
sub background_get {
    my ($path) = @_;
    my $pid = fork() // die;
    if ($pid == 0) {
        my $url = Certgate::Test::shell_quote("http://127.0.0.1:$port$path");
        my $code = `curl -s -o /dev/null -w '%{http_code}' --max-time 20 $url`;
        POSIX::_exit($code eq '200' ? 0 : 1);
    }
    return $pid;
}

# Two crypto tasks of 2 s each on a crypto pool of one thread: it is full for 4 s.
sub saturate_crypto {
    my @pids = map { background_get('/certgate/health?crypto=1&delay=2000') } 1 .. 2;
    sleep 0.3;    # both reach the worker; one runs, one waits in the queue
    return @pids;
}

sub timed_curl {
    my (@args) = @_;
    my $t0 = time;
    my $quoted = join ' ', map { Certgate::Test::shell_quote($_) } @args;
    my $code = `curl -s -o /dev/null -w '%{http_code}' --max-time 20 $quoted`;
    return ($code, time - $t0);
}

# The worker's threads: {tid => [policy, nice]} from /proc/PID/task/*/stat.
sub worker_threads {
    my ($master) = @_;
    my ($worker) = grep {
        my $s = Certgate::Test::read_file("/proc/$_/stat") // '';
        $s =~ /^\d+ \(.*?\) \S+ (\d+)/ && $1 == $master
    } map { m{/proc/(\d+)/} ? $1 : () } glob '/proc/[0-9]*/stat';
    my %threads;
    for my $stat (glob "/proc/$worker/task/*/stat") {
        my $s = Certgate::Test::read_file($stat) // next;
        my ($tid, $rest) = $s =~ /^(\d+) \(.*?\) (.*)$/s or next;
        my @f = split ' ', $rest;    # field 3 of stat(5) is $f[0]
        $threads{$tid} = [$f[38], $f[16]];    # policy (41), nice (19)
    }
    return \%threads;
}

my $pools = "thread_pool certgate_io threads=2;\nthread_pool certgate_crypto threads=1;\n";

subtest 'with certgate_crypto_thread_pool, I/O tasks pass crypto work' => sub {
    start(crypto => 1, main => $pools);
    my $start = time;
    my @pids = saturate_crypto();
    my ($code, $took) = timed_curl("http://127.0.0.1:$port/certgate/health");
    is($code, 200, 'the health probe (memcached and the store) answers');
    cmp_ok($took, '<', 1, sprintf('at once (%.3f s), while the crypto pool is full', $took));
    ($code, $took) = timed_curl("http://127.0.0.1:$port/certgate/");
    is($code, 200, 'the login screen (a GET, an I/O task) answers');
    cmp_ok($took, '<', 1, sprintf('at once too (%.3f s)', $took));
    # A login checks a password (argon2): it is crypto work, and waits its turn.
    ($code, $took) = timed_curl('-d', 'user_id=nobody01&password=x', "http://127.0.0.1:$port/certgate/login");
    like($code, qr/^\d{3}$/, "a POST of login is answered ($code)");
    cmp_ok(time - $start, '>', 3.5, sprintf('after the crypto tasks ahead of it (%.1f s)', time - $start));
    my $ok = 0;
    for my $pid (@pids) { waitpid($pid, 0); $ok++ if $? == 0 }
    is($ok, 2, 'both crypto tasks answered 200');

    my $threads = worker_threads($t->{pids}{nginx});
    my @batch = grep { $_->[0] == 3 && $_->[1] == 19 } values %$threads;
    my @io = grep { $_->[0] == 0 && $_->[1] == 10 } values %$threads;
    is(scalar @batch, 1, 'the crypto thread runs at SCHED_BATCH, nice 19')
        or diag explain $threads;
    cmp_ok(scalar @io, '>=', 1, 'the I/O threads at nice 10') or diag explain $threads;
    $t->stop_nginx;
};

subtest 'issuance (④ ⑤ ⑥ ⑧) and login run through the crypto pool' => sub {
    start(crypto => 1, main => $pools);
    $t->add_org('ORG001');
    my $pw = 'Passw0rd!';
    $t->add_user('ORG001', 'alice001', $pw);
    my $issued = $t->issue_certificate('alice001', $pw);
    ok($issued->{ok}, 'a certificate is issued') or diag explain $issued;
    my $jar = $t->jar;
    my $r = $t->login('alice001', $pw, cert => $issued->{name}, jar => $jar);
    ok($r->{json}{ok}, 'and logs in with it') or diag $r->{body};
    $r = $t->request('/app/index.html', cookies => $jar, cert => $issued->{name});
    is($r->{status}, 200, 'the protected location lets it through');
    $t->stop_nginx;
};

subtest 'without it, both kinds share certgate_thread_pool and queue' => sub {
    start(crypto => 0, main => "thread_pool certgate_io threads=1;\n");
    my @pids = saturate_crypto();
    my ($code, $took) = timed_curl("http://127.0.0.1:$port/certgate/health");
    is($code, 200, 'the health probe answers');
    cmp_ok($took, '>', 3, sprintf('but only after the crypto tasks (%.1f s)', $took));
    waitpid($_, 0) for @pids;
    $t->stop_nginx;
};

subtest 'an unknown pool stops nginx -t' => sub {
    $t->write_conf(<<'EOF', main => "thread_pool certgate_io threads=1;\n");
    %%CERTGATE%%
    certgate_thread_pool certgate_io;
    certgate_crypto_thread_pool nosuch;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location /certgate/ { certgate_portal; }
    }
EOF
    my ($rc, $out) = $t->nginx_t;
    isnt($rc, 0, 'nginx -t fails');
    like($out, qr/unknown thread pool "nosuch"/, 'and names the pool') or diag $out;
};

# The one [emerg] is nginx -t's, above.
$t->done(allow => qr{unknown thread pool "nosuch"});
done_testing;
