# The portal's CRL (issue 12.6): every worker serves the same CRL from the
# store; it is signed again on a revocation and before its nextUpdate (at
# half of certgate_crl_validity), and its crlNumber is one sequence across
# workers, reloads and `certgatectl crl`: it never goes backwards and never
# names two different CRLs.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Certgate::Test;

my $t = Certgate::Test->new;
my $d = $t->dir;
$t->start_memcached;
$t->start_smtp;
my $conf = <<'EOF';
    %%CERTGATE%%
    %%VALIDITY%%
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
    }
EOF
sub conf_with { my ($v) = @_; (my $c = $conf) =~ s/%%VALIDITY%%/$v/; $t->write_conf($c, workers => 2) }
conf_with('');    # the default lifetime first
$t->start_nginx;
$t->add_org('ORG001');
$t->add_user('ORG001', $_, 'Passw0rd!') for qw(crluser01 crluser02);

my $n = 0;
my %content_of;    # crlNumber -> DER
my $last = 0;
my $backwards = 0;
my $clashes = 0;

# GET /certgate/crl and what openssl reads in it.
sub fetch {
    my $g = $t->get('/certgate/crl');
    return { status => $g->{status} } unless $g->{status} == 200;
    my $file = "$d/crl-" . ++$n . '.der';
    Certgate::Test::write_file($file, $g->{raw_body});
    my ($rc, $out) = Certgate::Test::run('openssl', 'crl', '-inform', 'DER', '-in', $file,
        '-CAfile', "$d/ca.crt", '-noout', '-text');
    my ($number) = $out =~ /X509v3 CRL Number:\s*\n\s*(\d+)/;
    my ($this) = $out =~ /Last Update: (.+)/;
    my ($next) = $out =~ /Next Update: (.+)/;
    my @serials = $out =~ /Serial Number: ([0-9A-F]+)/gi;
    my $c = { status => 200, number => $number // -1, verified => $out =~ /verify OK/ ? 1 : 0,
              this => $this, next => $next, serials => [map { uc } @serials], der => $g->{raw_body},
              text => $out };
    $backwards++ if $c->{number} < $last;
    $last = $c->{number} if $c->{number} > $last;
    if (exists $content_of{$c->{number}} && $content_of{$c->{number}} ne $c->{der}) { $clashes++ }
    $content_of{$c->{number}} //= $c->{der};
    return $c;
}

sub epoch_of {
    my ($text) = @_;
    my $out = `date -u -d '$text' +%s`;
    chomp $out;
    return $out;
}

my $first;
subtest 'both workers serve one CRL, verified against the CA' => sub {
    my @c = map { fetch() } 1 .. 12;
    is(scalar(grep { $_->{status} == 200 } @c), 12, 'twelve GETs answer 200');
    is(scalar(grep { $_->{verified} } @c), 12, 'openssl crl -CAfile ca.crt: verify OK for each');
    my %numbers = map { $_->{number} => 1 } @c;
    is(scalar(keys %numbers), 1, 'one crlNumber') or diag explain [keys %numbers];
    ok(epoch_of($c[-1]{next}) > time, 'its nextUpdate is in the future');
    $first = $c[-1];
};

subtest 'a revocation: signed again at once, with a higher number' => sub {
    my ($name) = $t->client_cert_until('crluser01', time + 86400, store_user => 'crluser01');
    my $serial = uc((`openssl x509 -noout -serial -in $d/$name.crt` =~ /serial=(\w+)/)[0]);
    my ($rc, $out) = $t->certgatectl('cert', 'revoke', $serial, '--reason', 'keyCompromise');
    is($rc, 0, 'certgatectl cert revoke') or diag $out;
    sleep 1.1;    # a later thisUpdate: a CRL signed again differs
    my @c = map { fetch() } 1 .. 12;
    is(scalar(grep { grep { $_ eq $serial } @{$_->{serials}} } @c), 12, 'every GET lists the serial');
    ok($c[0]{number} > $first->{number}, "the number grew ($first->{number} -> $c[0]{number})");
    my %numbers = map { $_->{number} => 1 } @c;
    is(scalar(keys %numbers), 1, 'every worker serves the same CRL') or diag explain [keys %numbers];
    is($clashes, 0, 'no crlNumber named two different CRLs');
    $first = $c[-1];
};

subtest 'before nextUpdate, a fresh CRL is signed' => sub {
    conf_with('certgate_crl_validity 6s;');
    $t->reload_nginx(workers => 2);
    $first = fetch();
    ok(epoch_of($first->{next}) - epoch_of($first->{this}) <= 6, 'the shorter lifetime applies at once');
    sleep 3.2;    # half of certgate_crl_validity 6s
    my $c = fetch();
    ok($c->{number} > $first->{number}, "a new number ($first->{number} -> $c->{number})");
    ok(epoch_of($c->{this}) > epoch_of($first->{this}), 'a later thisUpdate');
    ok(epoch_of($c->{next}) > time + 2, 'nextUpdate well in the future');
    ok($c->{verified}, 'verify OK');
    sleep 7;    # past the first one's nextUpdate
    $c = fetch();
    ok(epoch_of($c->{next}) > time, 'after a whole lifetime: never an expired CRL');
    $first = $c;
};

subtest 'a reload and certgatectl crl continue the sequence' => sub {
    $t->reload_nginx(workers => 2);
    my $c = fetch();
    ok($c->{number} >= $first->{number}, 'after the reload: not smaller');
    my ($rc, $out) = $t->certgatectl('-c', "$d/nginx.conf", 'crl', '--out', "$d/ctl.der");
    is($rc, 0, 'certgatectl crl') or diag $out;
    ($rc, $out) = Certgate::Test::run('openssl', 'crl', '-inform', 'DER', '-in', "$d/ctl.der", '-noout', '-text');
    my ($ctl_number) = $out =~ /X509v3 CRL Number:\s*\n\s*(\d+)/;
    ok($ctl_number > $c->{number}, "certgatectl's number follows the portal's ($c->{number} -> $ctl_number)");
    my ($name) = $t->client_cert_until('crluser02', time + 86400, store_user => 'crluser02');
    my $serial = uc((`openssl x509 -noout -serial -in $d/$name.crt` =~ /serial=(\w+)/)[0]);
    ($rc, $out) = $t->certgatectl('cert', 'revoke', $serial, '--reason', 'superseded');
    my $after = fetch();
    ok($after->{number} > $ctl_number, "the portal's next one follows certgatectl's ($ctl_number -> $after->{number})");
};

is($backwards, 0, 'the crlNumber never went backwards over all GETs');
is($clashes, 0, 'no crlNumber named two different CRLs');
unlike($t->error_log, qr/\[error\].*crl/i, 'no CRL error in the log');

$t->done;
done_testing;
