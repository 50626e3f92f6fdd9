# The module and certgatectl share the store: while nginx with 2 workers
# serves the portal and health (each health check reads the store from the
# thread pool), 200 certgatectl writes all succeed and nginx logs no store
# error.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX qw(:sys_wait_h);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
$t->write_conf(<<'EOF', workers => 2);
    %%CERTGATE%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location /certgate/ { certgate_portal; }
    }
EOF
$t->start_nginx;

my ($rc, $out) = $t->certgatectl('org', 'add', 'LOAD01', '--name', 'Load test');
is($rc, 0, 'organisation added') or diag $out;

# Readers: health checks and login screens, from two processes, until told to stop.
my $port = $t->port('http');
my $stop = $t->dir . '/stop-readers';
my @readers;
for my $n (1 .. 2) {
    my $pid = fork() // die;
    if ($pid == 0) {
        my ($ok, $bad) = (0, 0);
        for (1 .. 2000) {
            last if -e $stop;
            my $code = `curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/certgate/health`;
            $code eq '200' ? $ok++ : $bad++;
        }
        Certgate::Test::write_file($t->dir . "/reader-$n", "$ok $bad\n");
        POSIX::_exit(0);
    }
    push @readers, $pid;
}

# Writers: 200 certgatectl writes from two loops at once.
my @writers;
for my $w (1 .. 2) {
    my $pid = fork() // die;
    if ($pid == 0) {
        my $failed = 0;
        for my $i (1 .. 100) {
            my $id = sprintf('load%d%04d', $w, $i);
            my $out = `echo 'Passw0rd!' | @{[Certgate::Test::build_dir()]}/certgatectl --store sqlite:@{[$t->dir]}/certgate.db user add-general LOAD01 $id --mail $id\@load.example --password-stdin 2>&1`;
            if ($? != 0) { $failed++; print STDERR $out }
        }
        POSIX::_exit($failed > 255 ? 255 : $failed);
    }
    push @writers, $pid;
}
my $failed = 0;
for my $pid (@writers) { waitpid($pid, 0); $failed += $? >> 8 }
Certgate::Test::write_file($stop, '');
waitpid($_, 0) for @readers;

is($failed, 0, '200 certgatectl writes all succeeded');
($rc, $out) = $t->certgatectl('--json', 'user', 'list', '--org', 'LOAD01');
my $count = () = $out =~ /"user_id":"load/g;
is($count, 200, 'the store holds the 200 users');

my ($ok, $bad) = (0, 0);
for my $n (1 .. 2) {
    my ($o, $b) = split ' ', Certgate::Test::read_file($t->dir . "/reader-$n");
    $ok += $o; $bad += $b;
}
cmp_ok($ok, '>', 10, "health answered during the writes ($ok checks)");
is($bad, 0, 'every health check saw the store up');
unlike($t->error_log, qr/certgate: store/, 'nginx logged no store error');

$t->done;
done_testing;
