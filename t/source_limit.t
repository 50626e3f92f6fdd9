# The per-source throttle (certgate_source_limit) drains while an address
# keeps knocking: requests refused with 429 many times a second do not hold
# the bucket full, so Retry-After counts down in real time and the address
# gets its next try when it said (with the default 15 per hour one failure
# drains in 240 s, far more than the gap between two knocks).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
$t->write_conf(<<'EOF2');
    %%CERTGATE%%
    certgate_source_limit 15 1h;
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
    }
EOF2
$t->start_nginx;
$t->add_org('ORG001');
$t->add_user('ORG001', "user0$_", 'Passw0rd!') for 1 .. 3;

my $jar = $t->jar;
sub try_once {
    my ($user) = @_;
    return $t->submit('/certgate/issue', { user_id => $user, password => 'Wrong0pass!' }, jar => $jar);
}

my @status = map { try_once('user0' . (1 + $_ % 3))->{status} } 0 .. 14;
is(scalar(grep { $_ == 401 } @status), 15, '15 failures from one address: 401 each');
my $r = try_once('user01');
is($r->{status}, 429, 'the 16th: 429');
my $first = $r->{headers}{'retry-after'};
like($first, qr/^\d+$/, "Retry-After $first s");
my $start = time;

# Knock ten times a second for four seconds.
my $knocks = 0;
while (time < $start + 4) {
    $r = try_once('user02');
    $knocks++ if $r->{status} == 429;
    sleep 0.1;
}
my $elapsed = time - $start;
$r = try_once('user03');
is($r->{status}, 429, "still 429 after $knocks knocks");
my $now = $r->{headers}{'retry-after'};
cmp_ok($first - $now, '>=', int($elapsed) - 1,
    sprintf('Retry-After counted down while knocking: %d s, then %d s, %.1f s later', $first, $now, $elapsed));

$t->done;
done_testing;
