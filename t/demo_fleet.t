# make demo-fleet (t/demo-fleet), on its own ports in a temporary directory:
# it starts, an issuance walked through its balancer reaches every node, one
# login is a session on all three nodes, a second start keeps the data, and
# stop leaves no process behind.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Certgate::Test;
use Certgate::Demo qw(read_pid running);

my $began = time;
my $script = "$Certgate::Test::ROOT/t/demo-fleet";
my $tmp = tempdir('certgate-t-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{CERTGATE_KEEP});
my $dir = "$tmp/demo-fleet";
chmod 0711, $tmp if $> == 0;    # PostgreSQL runs as postgres, under it
my $password = 'Demo#2026a';

# A base port whose every derived port is free (t/demo-fleet's header).
sub free_on { my ($addr, $p) = @_; my $s = IO::Socket::INET->new(LocalAddr => $addr, LocalPort => $p, Proto => 'tcp', ReuseAddr => 1) or return 0; close $s; 1 }
my $base;
for (1 .. 50) {
    my $b = 12000 + int(rand(6000));
    next unless free_on('127.0.0.1', $b) && free_on('127.0.0.1', $b + 47000)
        && free_on('127.0.0.1', $b + 2868) && free_on('127.0.0.1', $b + 2869) && free_on('127.0.0.1', $b - 418);
    next if grep { !free_on("127.0.0.$_", $b) || !free_on("127.0.0.$_", $b - 1) } 2 .. 4;
    $base = $b;
    last;
}
BAIL_OUT('no free ports for the demo fleet') unless $base;
$ENV{CERTGATE_DEMO_DIR} = $dir;
$ENV{CERTGATE_DEMO_PORT} = $base;
$ENV{CERTGATE_BUILD} = Certgate::Test::build_dir();

sub demo { my ($cmd) = @_; my $out = `$script $cmd 2>&1`; return ($? >> 8, $out) }
my ($started, $stopped);
END { local $?; demo('stop') if $started && !$stopped }

# The balancer and each node (directly), all under one name (curl
# --resolve), so one cookie jar is one browser wherever it goes.
sub client { my ($addr, $port) = @_;
    return bless { dir => $dir, ports => { https => $port }, url_host => 'localhost', host => $addr,
        pids => {}, owner => 0, timeout => 60 }, 'Certgate::Test' }
my $lb = client('127.0.0.1', $base);
my @node = map { client("127.0.0.$_", $base - 1) } 2 .. 4;
sub node_of { $_[0]{headers}{'x-certgate-node'} // '?' }

my ($rc, $out) = demo('start');
$started = 1;
is($rc, 0, 't/demo-fleet start') or diag $out;
like($out, qr{URL\s+https://127\.0\.0\.1:$base/certgate/}, 'it prints the balancer URL');
like($out, qr{demouser1\s+password\s+\Q$password\E}, 'and the logins of make demo');
like($out, qr{node 3\s+https://127\.0\.0\.4:@{[$base - 1]}/certgate/}, 'and how to reach each node');

# The demo's users get mail at user1@demo.example (not <user ID>@).
sub code_mails { grep { ($_->{to} // '') =~ /^user1\@/ && $_->{subject} =~ /認証コード/ } $lb->decoded_mails }
my %served;
my $flow = $lb->jar;
my $r = $lb->submit('/certgate/issue', { user_id => 'demouser1', password => $password }, jar => $flow);
ok($r->{json}{ok}, '④ through the balancer') or diag explain $r->{json};
$served{node_of($r)}++;
my $code;
for (1 .. 200) { my @m = code_mails(); if (@m) { ($code) = $m[-1]{body} =~ /(\d{6})/; last } sleep 0.1 }
ok($code, 'the code mail lands in the Maildir');
$r = $lb->submit('/certgate/issue/code', { code => $code // '' }, jar => $flow);
ok($r->{json}{ok}, '⑤') or diag explain $r->{json};
$served{node_of($r)}++;
$r = $lb->submit('/certgate/issue/confirm', {}, jar => $flow);
ok($r->{json}{ok}, '⑥') or diag explain $r->{json};
$served{node_of($r)}++;
my $dl = $lb->get($r->{json}{download} // '/none', cookies => $flow);
is($dl->{status}, 200, '⑧ the .p12 downloads');
$lb->save_p12($dl->{raw_body}, 'demouser1', $password) if $dl->{status} == 200;

my $jar = $lb->jar;
ok($lb->login('demouser1', $password, cert => 'demouser1', jar => $jar)->{json}{ok}, 'login through the balancer');
for (1 .. 3) { my $a = $lb->get('/app/', cert => 'demouser1', cookies => $jar); $served{node_of($a)}++ if $a->{status} == 200 }
is(join(',', sort grep { $_ ne '?' } keys %served), '1,2,3', 'the balancer spread the requests over the three nodes');
for my $i (1 .. 3) {
    is($node[$i - 1]->get('/app/', cert => 'demouser1', cookies => $jar)->{status}, 200,
        "node $i directly: the session passes");
}
is($node[1]->get('/app/', cert => 'demouser1', json => 1)->{status}, 401, 'without the session: login required');

($rc, $out) = demo('start');
is($rc, 0, 'a second start') or diag $out;
like($out, qr/keeping the demo's data/, 'keeps the data');
ok($node[2]->login('demouser1', $password, cert => 'demouser1')->{json}{ok},
    'the certificate issued before logs in on node 3');

# Every process of the demo: from its pid files, and the nginx workers.
my @names = ('balancer', (map { "node$_/nginx" } 1 .. 3), qw(memcached1 memcached2 smtp));
my @pids = grep { defined } (map { read_pid("$dir/$_.pid") } @names), read_pid("$dir/pg/data/postmaster.pid");
push @pids, map { split /\s+/, `pgrep -P $_` } @pids;
@pids = grep { /^\d+$/ } @pids;
cmp_ok(scalar @pids, '>=', 8 + 7, 'the demo runs 8 processes and services (and their children)');
($rc, $out) = demo('stop');
$stopped = 1;
is($rc, 0, 't/demo-fleet stop') or diag $out;
my @left;
for (1 .. 50) { @left = grep { running($_) } @pids; last unless @left; sleep 0.1 }
is(scalar @left, 0, 'stop leaves no process behind (nginx, PostgreSQL, memcached, SMTP)')
    or diag `ps -o pid,args -p @{[join ',', @left]}`;
ok(!-e "$dir/pg/data/postmaster.pid", 'PostgreSQL stopped');
my @bad = map { my $f = $_; map { "$f: $_" } grep { /\[(alert|crit|emerg)\]/ } split /\n/, Certgate::Test::read_file($f) // '' }
    glob("$dir/node*/logs/error.log");
push @bad, glob("$dir/node*/logs/asan*"), glob("$dir/node*/logs/ubsan*");
is(scalar @bad, 0, 'no [alert], [crit], [emerg] or sanitizer report in the logs of any node') or diag join "\n", @bad;
diag(sprintf 'demo_fleet.t ran %.0f s', time - $began);
done_testing;

