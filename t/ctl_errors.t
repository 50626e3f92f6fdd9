#!/usr/bin/perl
# certgatectl refuses bad input: each case exits with its documented code,
# says why in exactly one line on standard error, and leaves the store as it was.

use strict;
use warnings;
use utf8;

use lib 't/lib';
use File::Temp qw(tempdir);
use Test::More;
use Certgate::Ctl;

BAIL_OUT('certgatectl not built (' . Certgate::Ctl::binary() . '): run make first')
    unless -x Certgate::Ctl::binary();

my $dir = tempdir('certgate-ctl-err-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{CERTGATE_KEEP});
open my $fh, '>', "$dir/nginx.conf" or die;
print $fh <<"EOF";
http {
    certgate_store sqlite:$dir/certgate.db;
    certgate_ca_certificate $dir/ca.pem;
    certgate_ca_key $dir/ca.key;
    certgate_key_type ec:P-256;
}
EOF
close $fh;

my $ctl = Certgate::Ctl->new(conf => "$dir/nginx.conf");

# Before init: a missing store is named, with what to do.
refused('store not created yet', [qw(user list)], 4, qr/does not exist.*certgatectl init/);
ok !-e "$dir/certgate.db", 'no store file was created by a read';

# The store to refuse things against.
for my $cmd (
    ['init', '--demo-ca'],
    [qw(org add ORG1)],
    [qw(org add ORG2)],
    [qw(user add-master ORG1 master01 --mail m1@example.com)],
    [qw(user add-general ORG1 general01 --mail g1@example.com)])
{
    my $r = $ctl->run(@$cmd);
    die "setup: certgatectl @$cmd: $r->{err}" if $r->{rc};
}
my $serial = Certgate::Ctl::make_client_cert($dir, 'general01');
$ctl->run('cert', 'import', "$dir/general01.pem")->{rc} == 0 or die 'cert import';
$ctl->run('cert', 'revoke', $serial, '--reason', 'superseded')->{rc} == 0 or die 'revoke';

# --- unknown things: exit 2 ----------------------------------------------------------------------

refused('unknown org (add-master)', [qw(user add-master NOORG user0001 --mail a@example.com)],
    2, qr/organisation NOORG does not exist/);
refused('unknown org (add-general)', [qw(user add-general NOORG user0001 --mail a@example.com)],
    2, qr/organisation NOORG does not exist/);
refused('unknown org (show)', [qw(org show NOORG)], 2, qr/NOORG does not exist/);
refused('unknown org (user list)', [qw(user list --org NOORG)], 2, qr/NOORG does not exist/);
refused('unknown user (reset)', [qw(user reset nobody01)], 2, qr/user nobody01 does not exist/);
refused('unknown user (unlock)', [qw(user unlock nobody01)], 2, qr/does not exist/);
refused('unknown user (unblock)', [qw(user unblock nobody01)], 2, qr/does not exist/);
refused('unknown user (lock)', [qw(user lock nobody01)], 2, qr/does not exist/);
refused('unknown user (show)', [qw(user show nobody01)], 2, qr/does not exist/);
refused('unknown user (audit)', [qw(audit --user nobody01)], 2, qr/does not exist/);
refused('unknown serial (revoke)', [qw(cert revoke 0A1B2C3D4E --reason keyCompromise)],
    2, qr/certificate 0A1B2C3D4E is not in the store/);
refused('unknown serial (show)', [qw(cert show ABCDEF)], 2, qr/not in the store/);
refused('no live certificate (revoke --user)',
    [qw(cert revoke --user master01 --reason keyCompromise)], 2, qr/no live certificate/);
refused('unknown mail', [qw(mail retry 42)], 2, qr/mail 42/);

# --- bad input: exit 1 -----------------------------------------------------------------------------

for my $case (
    ['abc12',         'too short'],
    ['abcdef1234567', 'too long'],
    ['abcdefgh',      'needs at least one digit'],
    ['12345678',      'needs at least one letter'],
    ['abc_1234',      'not allowed'])
{
    my ($id, $why) = @$case;
    refused("user ID $id breaks R8", ['user', 'add-general', 'ORG1', $id, '--mail', 'x@example.com'],
        1, qr/user ID '$id' breaks R8.*\Q$why\E/);
}
refused('bad mail address', [qw(user add-general ORG1 general02 --mail not-an-address)],
    1, qr/not a valid address/);
refused('missing --mail', [qw(user add-general ORG1 general02)], 1, qr/--mail ADDR is required/);
refused('password breaking R9 on stdin',
    [qw(user add-general ORG1 general02 --mail g2@example.com --password-stdin)],
    1, qr/breaks R9.*symbol/, "Passw0rd\n");
refused('empty password on stdin',
    [qw(user add-general ORG1 general02 --mail g2@example.com --password-stdin)],
    1, qr/no password/, "");
refused('bad organisation ID', ['org', 'add', 'bad org!'], 1, qr/organisation ID/);
refused('bad serial', [qw(cert revoke xyz --reason keyCompromise)], 1, qr/not a certificate serial/);
refused('unknown reason', ['cert', 'revoke', $serial, '--reason', 'lostIt'], 1, qr/unknown --reason/);
refused('missing reason', ['cert', 'revoke', $serial], 1, qr/--reason is required/);
refused('serial and --user', ['cert', 'revoke', $serial, '--user', 'general01', '--reason',
    'superseded'], 1, qr/either a SERIAL or --user/);
refused('crl without --out', ['crl'], 1, qr/--out FILE is required/);
refused('unknown command', ['frobnicate'], 1, qr/unknown command 'frobnicate'/);
refused('unknown subcommand', [qw(user frobnicate)], 1, qr/unknown command 'user frobnicate'/);
refused('unknown option', [qw(user list --colour)], 1, qr/unknown option --colour/);
refused('option of another command', [qw(user list --reason x)], 1, qr/does not take --reason/);
refused('missing positional', [qw(user show)], 1, qr/missing USER_ID/);
refused('bad duration', [qw(cert list --expiring-within soon)], 1, qr/duration/);

# --- conflicts: exit 3 --------------------------------------------------------------------------------

refused('duplicate user', [qw(user add-general ORG1 general01 --mail x@example.com)],
    3, qr/user general01 already exists/);
refused('duplicate user in another org', [qw(user add-general ORG2 general01 --mail x@example.com)],
    3, qr/already exists/);
refused('second master user', [qw(user add-master ORG1 master02 --mail x@example.com)],
    3, qr/ORG1 already has master user master01/);
refused('duplicate organisation', [qw(org add ORG1)], 3, qr/organisation ORG1 already exists/);
refused('revoked twice', ['cert', 'revoke', $serial, '--reason', 'keyCompromise'],
    3, qr/already revoked/);
refused('import twice', ['cert', 'import', "$dir/general01.pem"], 3, qr/already recorded/);
refused('unblock a user that is not blocked', [qw(user unblock general01)], 3, qr/not blocked/);
refused('unlock a user that is not locked', [qw(user unlock general01)], 3, qr/not locked/);

# --- the store: exit 4 --------------------------------------------------------------------------------

open my $f, '>', "$dir/afile" or die;
close $f;
refused('unwritable store path (parent is a file)',
    [qw(init)], 4, qr/directory .* does not exist/, undef,
    ['--store', "sqlite:$dir/afile/certgate.db"]);
if ($> != 0) {
    mkdir "$dir/ro";
    chmod 0555, "$dir/ro";
    refused('unwritable store path (read-only directory)',
        [qw(init)], 4, qr/not writable/, undef, ['--store', "sqlite:$dir/ro/certgate.db"]);
    ok !-e "$dir/ro/certgate.db", 'nothing created there';
}
refused('store is not SQLite', [qw(user list)], 4, qr/not an SQLite database/, undef,
    ['--store', "$dir/nginx.conf"]);
{
    # A store whose pages after the header are overwritten: corrupt, not a crash.
    open my $in, '<:raw', "$dir/certgate.db" or die;
    local $/;
    my $bytes = <$in>;
    close $in;
    substr($bytes, 4096) = "\xff" x (length($bytes) - 4096);
    open my $out, '>:raw', "$dir/corrupt.db" or die;
    print $out $bytes;
    close $out;
}
refused('corrupt store', [qw(audit)], 4, qr/is corrupt.*restore it from a backup/, undef,
    ['--store', "$dir/corrupt.db"]);
refused('no store at all', [qw(user list)], 1, qr/no store given|has no certgate_store/, undef, ['--json']);

# --- configuration and files: exit 5 ---------------------------------------------------------------------

refused('letter into a missing directory (user not added)',
    [qw(user add-general ORG1 general03 --mail g3@example.com --out), "$dir/no/such/letter.txt"],
    5, qr/cannot write letter/);
my $r = $ctl->run('user', 'show', 'general03');
is $r->{rc}, 2, '... and general03 does not exist';
refused('unreadable nginx.conf', [qw(user list)], 5, qr/cannot read/, undef,
    ['-c', "$dir/missing.conf"]);
# A line nginx would refuse: certgatectl reads it with the module's parser
# and names the same file and line.
for my $case (
    ['lockout with a bad unit', 'certgate_lockout 6 60x 3;', qr/invalid lock time "60x"/],
    ['a table file as the zone', 'certgate_timezone zone1970.tab;', qr/unknown time zone "zone1970\.tab"/],
    ['a duplicate store', "certgate_store sqlite:$dir/other.db;", qr/"certgate_store" directive is duplicate/],
    ['an http directive in a server', 'server { certgate_mail_from a\@example.com; }',
        qr/"certgate_mail_from" directive is not allowed here/],
    ['too many arguments', 'certgate_session_timeout 20m 8h 1d;',
        qr/invalid number of arguments in "certgate_session_timeout" directive/])
{
    my ($name, $line, $re) = @$case;
    (my $file = "$dir/bad-$name.conf") =~ s/ /-/g;
    open my $bad, '>', $file or die;
    print $bad "http {\n    certgate_store sqlite:$dir/certgate.db;\n    $line\n}\n";
    close $bad;
    refused("nginx.conf with $name", [qw(user list)], 5, qr/$re.* in \Q$file\E:3$/, undef, ['-c', $file]);
}
refused('CRL into a missing directory', ['crl', '--out', "$dir/no/such/crl.pem"],
    5, qr/cannot write/);

done_testing;

# --- helpers ---------------------------------------------------------------------------------------------

# The store's visible state, to show a refused command changed nothing.
sub snapshot {
    my $s = Certgate::Ctl->new(conf => "$dir/nginx.conf");
    return '' unless -e "$dir/certgate.db";
    return join "\n", map { $s->run('--json', @$_)->{out} }
        ['audit'], ['org', 'list'], ['user', 'list'], ['cert', 'list'], ['mail', 'list'];
}

# One refused command: exit code, one line on stderr matching, no output, nothing changed.
sub refused {
    my ($name, $args, $code, $re, $stdin, $global) = @_;
    my $before = snapshot();
    my $r = $ctl->run({ stdin => $stdin, ($global ? (global => $global) : ()) }, @$args);
    subtest $name => sub {
        is $r->{rc}, $code, "exit $code";
        my @lines = split /\n/, $r->{err};
        is scalar @lines, 1, 'one line on stderr' or diag $r->{err};
        like $r->{err}, qr/^certgatectl: /, 'names the tool';
        like $r->{err}, $re, 'says why';
        is $r->{out}, '', 'nothing on stdout';
        is snapshot(), $before, 'store unchanged';
    };
}
