#!/usr/bin/perl
# Several certgatectl processes write to one store at once (as the nginx
# workers do): WAL, the busy timeout and the write retry let every write land,
# and the event numbers stay gapless.

use strict;
use warnings;

use lib 't/lib';
use File::Temp qw(tempdir);
use Test::More;
use Certgate::Ctl;

BAIL_OUT('certgatectl not built (' . Certgate::Ctl::binary() . '): run make first')
    unless -x Certgate::Ctl::binary();

my $dir = tempdir('certgate-ctl-conc-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{CERTGATE_KEEP});
my $ctl = Certgate::Ctl->new();
my @store = ('--store', "sqlite:$dir/certgate.db");
is $ctl->run({ global => \@store }, 'init')->{rc}, 0, 'init';
is $ctl->run({ global => \@store }, 'org', 'add', 'ORG0')->{rc}, 0, 'org add';
is $ctl->run({ global => \@store }, 'user', 'add-general', 'ORG0', 'target01',
    '--mail', 't@example.com')->{rc}, 0, 'user add';

my ($writers, $each) = (4, 50);
my @pids;
for my $w (1 .. $writers) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $failed = 0;
        for my $i (1 .. $each) {
            # Alternate two kinds of write: a new row, and a change of one shared row.
            my @cmd = $i % 2 ? ('org', 'add', "ORG${w}x$i") : ('user', 'lock', 'target01');
            my $r = $ctl->run({ global => \@store }, @cmd);
            # A lock may meet a block made by another writer: that is a refusal, not a failure.
            $failed++ if $r->{rc} && !($r->{rc} == 3 && $r->{err} =~ /already blocked/);
            print STDERR "writer $w: $r->{err}" if $r->{rc} && $r->{rc} != 3;
        }
        exit($failed ? 1 : 0);
    }
    push @pids, $pid;
}
my $bad = 0;
for (@pids) { waitpid $_, 0; $bad++ if $? }
is $bad, 0, "$writers writers x $each writes, none failed";

my $orgs = $ctl->json('--store', "$dir/certgate.db", 'org', 'list');
is scalar @$orgs, 1 + $writers * $each / 2, 'every org add landed';
my $events = $ctl->json('--store', "$dir/certgate.db", 'audit');
is_deeply [map { $_->{id} } @$events], [1 .. scalar @$events], 'event ids gapless';

done_testing;
