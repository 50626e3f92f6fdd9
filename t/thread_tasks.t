# Thread tasks: blocking work runs in the thread pool, so the event loop of a
# single worker keeps answering while it runs; a client that leaves mid-task
# leaves nothing behind (tasks_alive returns to 0; under SANITIZE=1 no
# AddressSanitizer report).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX qw(:sys_wait_h);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
Certgate::Test::write_file($t->dir . '/static.txt', "static\n");
$t->write_conf(<<'EOF', workers => 1);
    %%CERTGATE%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location /certgate/ { certgate_portal; }
        location = /static.txt { root %%DIR%%; }
    }
EOF
$t->start_nginx;

my $port = $t->port('http');

# Starts a request in a child process; returns its pid. The child exits 0 if
# the answer was a 200.
sub background_get {
    my ($path, $max_time) = @_;
    my $pid = fork() // die;
    if ($pid == 0) {
        my $code = `curl -s -o /dev/null -w '%{http_code}' --max-time $max_time http://127.0.0.1:$port$path`;
        POSIX::_exit($code eq '200' ? 0 : 1);
    }
    return $pid;
}

subtest '20 slow tasks do not hold up the event loop' => sub {
    my $start = time;
    my @pids = map { background_get('/certgate/health?delay=2000', 10) } 1 .. 20;
    sleep 0.3;    # let the 20 requests reach the worker and their tasks start
    my $r = $t->get('/static.txt', scheme => 'http');
    is($r->{status}, 200, 'static location answers while 20 tasks run');
    cmp_ok($r->{time}, '<', 0.5, sprintf('in well under a second (%.3fs)', $r->{time}));
    cmp_ok(time - $start, '<', 1.9, 'and before the tasks could have finished');

    my $ok = 0;
    for my $pid (@pids) { waitpid($pid, 0); $ok++ if $? == 0 }
    is($ok, 20, 'all 20 slow health checks answered 200');
    my $took = time - $start;
    cmp_ok($took, '<', 6, sprintf('the 20 tasks ran in parallel (%.1fs)', $took));
};

subtest 'clients that leave mid-task leave nothing behind' => sub {
    my @pids = map { background_get('/certgate/health?delay=1500', 0.3) } 1 .. 10;
    waitpid($_, 0) for @pids;
    sleep 2;    # the tasks finish after their clients left
    # Polled: the memory trim a second after the burst is a task too.
    my $r;
    for (1 .. 30) {
        $r = $t->get('/certgate/health', scheme => 'http');
        last if $r->{body} =~ /"tasks_alive":0\b/;
        sleep 0.1;
    }
    is($r->{status}, 200, 'worker still serves');
    like($r->{body}, qr{"tasks_alive":0\b}, 'no task left alive') or diag $r->{body};
    my $log = $t->error_log;
    unlike($log, qr{exited on signal}, 'no worker crashed');
};

# Issue 18: the pages a burst of tasks freed in the pool threads' malloc
# arenas go back to the system a second after the last task (malloc_trim in
# a pool thread), once per burst, never while the worker is idle.
subtest 'freed memory goes back after a burst, once' => sub {
    my $trims = sub { scalar(() = $t->error_log =~ /certgate: malloc_trim after a burst of tasks/g) };
    sleep 1.5;    # whatever the last subtest left has been trimmed
    my $before = $trims->();
    my @pids = map { background_get('/certgate/health?delay=200', 10) } 1 .. 4;
    my $ok = 0;
    for my $pid (@pids) { waitpid($pid, 0); $ok++ if $? == 0 }
    is($ok, 4, 'a burst of 4 tasks answered');
    is($trims->(), $before, 'no trim while the burst runs or just after it');
    my $after;
    for (1 .. 40) {
        $after = $trims->();
        last if $after > $before;
        sleep 0.1;
    }
    is($after, $before + 1, 'one trim a second after the burst');
    sleep 2;
    is($trims->(), $before + 1, 'and none while the worker is idle');
    unlike($t->error_log, qr{exited on signal}, 'no worker crashed');
};

subtest 'a graceful shutdown waits for the tasks' => sub {
    my @pids = map { background_get('/certgate/health?delay=1500', 10) } 1 .. 5;
    sleep 0.3;
    $t->stop_nginx;    # QUIT: graceful
    my $ok = 0;
    for my $pid (@pids) { waitpid($pid, 0); $ok++ if $? == 0 }
    is($ok, 5, 'the 5 requests waiting on tasks were answered before the worker left');
    unlike($t->error_log, qr/open socket .* left in connection/, 'no connection left open');
};

$t->done;
done_testing;
