package Certgate::Ctl;

# Runs certgatectl for the prove suites and keeps what it said:
#
#   my $ctl = Certgate::Ctl->new(conf => "$dir/nginx.conf");
#   my $r = $ctl->run('user', 'add-master', 'ORG1', 'master01', '--mail', 'm@example.com');
#   is $r->{rc}, 0; like $r->{out}, qr/master01/;
#   $ctl->run({ stdin => "Passw0rd!\n" }, 'user', 'add-general', ...);
#
# The binary comes from $CERTGATE_BUILD (default <repo>/build-test).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use Encode qw(decode);
use JSON::PP;

our $ROOT = abs_path(dirname(__FILE__) . '/../../..');

sub binary {
    my $dir = $ENV{CERTGATE_BUILD} || "$ROOT/build-test";
    return "$dir/certgatectl";
}

sub new {
    my ($class, %opts) = @_;
    return bless {%opts}, $class;
}

# run([\%opts,] @args): {rc, out, err}. opts: stdin (text), global (extra
# arguments placed before the command; default -c <conf> when conf was given).
sub run {
    my ($self, @args) = @_;
    my $opts = ref $args[0] eq 'HASH' ? shift @args : {};
    my @global = $opts->{global} ? @{ $opts->{global} }
               : $self->{conf}   ? ('-c', $self->{conf})
               :                   ();
    # Plain files in a private directory, removed after each run: File::Temp's
    # tempfile(UNLINK => 1) keeps every handle open until exit, and a suite
    # of a few hundred runs would reach a 1024 open-files limit.
    my $dir = ($self->{tmp} //= tempdir('certgatectl-XXXXXX', TMPDIR => 1, CLEANUP => 1));
    my $n = ++$self->{runs};
    my ($in, $out, $err) = map { "$dir/$$.$n.$_" } qw(in out err);    # forked writers share $dir
    open my $in_fh, '>', $in or die "$in: $!";
    print $in_fh $opts->{stdin} // '';
    close $in_fh;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN,  '<', $in  or die;
        open STDOUT, '>', $out or die;
        open STDERR, '>', $err or die;
        exec binary(), @global, @args or die "exec: $!";
    }
    waitpid $pid, 0;
    my $rc = $? >> 8;
    $rc = 128 + ($? & 127) if $? & 127;
    # Text, not bytes: the letters and names are Japanese.
    my %result = (rc => $rc, out => decode('UTF-8', slurp($out)), err => decode('UTF-8', slurp($err)),
                  args => [@args]);
    unlink $in, $out, $err;
    return \%result;
}

# The parsed JSON of a --json run that must succeed.
sub json {
    my ($self, @args) = @_;
    my $r = $self->run('--json', @args);
    die "certgatectl @args: exit $r->{rc}: $r->{err}" if $r->{rc};
    return JSON::PP->new->decode($r->{out});
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or return '';
    local $/;
    my $s = <$fh>;
    return $s // '';
}

# A password meets R9: 8-12 printable ASCII with upper, lower, digit and symbol.
sub meets_r9 {
    my ($pw) = @_;
    return $pw =~ /^[\x21-\x7e]{8,12}$/ && $pw =~ /[A-Z]/ && $pw =~ /[a-z]/
        && $pw =~ /[0-9]/ && $pw =~ /[^A-Za-z0-9]/;
}

# A client certificate for the user, signed by the CA in $dir (ca.pem, ca.key),
# written to $dir/<user>.pem; returns its serial as `openssl x509 -serial` prints it.
sub make_client_cert {
    my ($dir, $user) = @_;
    system("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
        . " -keyout $dir/$user.key -subj /CN=$user/O=ORG1 -out $dir/$user.csr 2>/dev/null") == 0
        or die 'openssl req failed';
    system("openssl x509 -req -in $dir/$user.csr -CA $dir/ca.pem -CAkey $dir/ca.key"
        . " -CAcreateserial -days 20 -out $dir/$user.pem 2>/dev/null") == 0
        or die 'openssl x509 failed';
    my $s = `openssl x509 -in $dir/$user.pem -noout -serial`;
    $s =~ s/^serial=//;
    chomp $s;
    return $s;
}

1;
