# certgatectl -c nginx.conf reads relative paths the way nginx does: against
# the directory of nginx.conf (nginx's conf prefix), never against the
# working directory. A user that certgatectl adds from elsewhere logs in
# through nginx, and no second store appears where certgatectl ran.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Cwd qw(getcwd);
use File::Basename qw(basename dirname);
use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;
use Certgate::Test;

my $t = Certgate::Test->new;
my $d = $t->dir;
$t->start_memcached;
$t->start_smtp;

my $memcached = $t->port('memcached');
my $smtp = $t->port('smtp');
mkdir "$d/relstore" or die "mkdir: $!";
$t->write_conf(<<"EOF");
    certgate_store sqlite:relstore/certgate.db;
    certgate_memcached 127.0.0.1:$memcached;
    certgate_secret secret;
    certgate_ca_certificate ca.crt;
    certgate_ca_key ca.key;
    certgate_mail smtp://127.0.0.1:$smtp;
    certgate_mail_from certgate\@example.test;
    certgate_source_limit off;
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ { certgate_require; return 200 "app\\n"; }
    }
EOF
my $conf = "$d/nginx.conf";

# Another working directory, with a relstore/ of its own: where the store
# would land if certgatectl took the path from the working directory.
my $elsewhere = tempdir('certgate-cwd-XXXXXX', TMPDIR => 1, CLEANUP => 1);
mkdir "$elsewhere/relstore" or die "mkdir: $!";
my $ctl = Certgate::Test::build_dir() . '/certgatectl';
my $home = getcwd();

sub ctl_in {
    my ($cwd, $stdin, @args) = @_;
    chdir $cwd or die "chdir $cwd: $!";
    my $cmd = join ' ', map { Certgate::Test::shell_quote($_) } $ctl, @args;
    $cmd = "printf '%s\\n' " . Certgate::Test::shell_quote($stdin) . " | $cmd" if defined $stdin;
    my $out = `$cmd 2>&1`;
    my $rc = $? >> 8;
    chdir $home or die "chdir $home: $!";
    return ($rc, $out);
}

my ($rc, $out) = ctl_in($elsewhere, undef, '-c', $conf, 'init');
is($rc, 0, 'certgatectl -c nginx.conf init from another directory') or diag $out;
ok(-s "$d/relstore/certgate.db", 'the store is made next to nginx.conf (relstore/ of the conf prefix)');
ok(!-e "$elsewhere/relstore/certgate.db", 'no store appears in the working directory');

($rc, $out) = ctl_in($elsewhere, undef, '-c', $conf, 'org', 'add', 'ORG001', '--name', 'Org 1');
is($rc, 0, 'org add') or diag $out;
my $pw = 'Passw0rd!';
# A relative -c, from the conf's parent directory: the prefix is still its directory.
($rc, $out) = ctl_in(dirname($d), $pw, '-c', basename($d) . '/nginx.conf', 'user', 'add-general',
    'ORG001', 'general1', '--mail', 'general1@example.test', '--password-stdin');
is($rc, 0, 'user add-general with a relative -c') or diag $out;
ok(!-e "$elsewhere/relstore/certgate.db", 'still no store in the working directory');

# nginx reads the same relative lines against its conf prefix.
$t->start_nginx;
my $issued = $t->issue_certificate('general1', $pw);
ok($issued->{ok}, 'the user certgatectl added passes issuance through nginx')
    or diag explain $issued;
my $jar = $t->jar;
my $r = $t->login('general1', $pw, jar => $jar, cert => $issued->{name});
ok($r->{json}{ok}, 'and logs in') or diag explain $r->{json};
is($t->get('/app/x', cert => $issued->{name}, cookies => $jar)->{status}, 200,
    'the protected location lets the session through');

# What nginx wrote, certgatectl reads: the same file.
($rc, $out) = ctl_in($elsewhere, undef, '-c', $conf, '--json', 'cert', 'list');
is($rc, 0, 'cert list') or diag $out;
my $certs = eval { decode_json($out) } || [];
$certs = $certs->{certificates} || [] if ref $certs eq 'HASH';
my ($serial) = map { $_->{serial} } grep { $_->{user_id} eq 'general1' } @$certs;
ok($serial, 'certgatectl sees the certificate nginx issued') or diag $out;

# The CA files are relative too: certgatectl signs a CRL with them.
($rc, $out) = ctl_in($elsewhere, undef, '-c', $conf, 'crl', '--out', "$elsewhere/crl.der");
is($rc, 0, 'crl with the relative CA paths of nginx.conf') or diag $out;
ok(-s "$elsewhere/crl.der", 'the CRL is written');

$t->done;
done_testing;
