#!/usr/bin/perl
# certgatectl end to end, as the bank operator uses it: the store and demo CA,
# an organisation with its master user and letter, a general user set up for
# automation, reset, lock/unlock/block/unblock, revocation, the CRL (read back
# with `openssl crl`), and the audit trail holding every step in order.

use strict;
use warnings;
use utf8;

use lib 't/lib';
use File::Temp qw(tempdir);
use Test::More;
use Certgate::Ctl;

BAIL_OUT('certgatectl not built (' . Certgate::Ctl::binary() . '): run make first')
    unless -x Certgate::Ctl::binary();

my $dir = tempdir('certgate-ctl-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{CERTGATE_KEEP});

# nginx.conf as a sysadmin writes it: certgate lines in an included file,
# quotes and comments.
write_file("$dir/nginx.conf", <<"EOF");
events { worker_connections 64; }
http {
    # certgate's own lines live next door
    include conf.d/*.conf;
    server { listen 127.0.0.1:1; location / { return 204; } }
}
EOF
mkdir "$dir/conf.d";
write_file("$dir/conf.d/certgate.conf", <<"EOF");
certgate_store "sqlite:$dir/certgate.db";   # the store
certgate_ca_certificate $dir/ca.pem;
certgate_ca_key '$dir/ca.key';
certgate_key_type ec:P-256;
certgate_timezone Asia/Tokyo;
EOF

my $ctl = Certgate::Ctl->new(conf => "$dir/nginx.conf");

# --- init ---------------------------------------------------------------------------

my $r = $ctl->run('init', '--demo-ca', '--ca-cn', 'Test Labour Bank CA');
is $r->{rc}, 0, 'init --demo-ca' or diag $r->{err};
like $r->{out}, qr/created \(schema version \d+\)/, 'init says the store was created';
ok -f "$dir/certgate.db", 'store file exists';
like `openssl x509 -in $dir/ca.pem -noout -subject 2>&1`, qr/Test Labour Bank CA/,
    'demo CA certificate readable by openssl';
is((stat "$dir/ca.key")[2] & 0777, 0600, 'CA key is 0600');

$r = $ctl->run('init', '--demo-ca');
is $r->{rc}, 0, 'init again is harmless';
like $r->{out}, qr/already initialised/, '... and says so';
like $r->{out}, qr/kept the existing CA/, '... keeping the CA';

is $ctl->json('status')->{schema_version}, 5, 'status shows the schema version';

# --- organisation and master user ----------------------------------------------------------

$r = $ctl->run('org', 'add', 'ORG1', '--name', 'ろうきん商事');
is $r->{rc}, 0, 'org add' or diag $r->{err};
my $orgs = $ctl->json('org', 'list');
is_deeply [map { $_->{org} } @$orgs], ['ORG1'], 'org list';
is $orgs->[0]{name}, 'ろうきん商事', 'organisation name kept in UTF-8';

$r = $ctl->run('user', 'add-master', 'ORG1', 'master01', '--mail', 'master01@example.com',
    '--name', '山田 太郎');
is $r->{rc}, 0, 'user add-master' or diag $r->{err};
like $r->{out}, qr/User ID:\s+master01$/m, 'letter holds the user ID';
my ($pw1) = $r->{out} =~ /Initial password:\s*(\S+)$/m;
ok defined $pw1 && Certgate::Ctl::meets_r9($pw1), "letter holds an R9 password ($pw1)";
like $r->{out}, qr/マスターユーザーの初期登録/, 'letter says where to register';

my $u = $ctl->json('user', 'show', 'master01');
is $u->{state}, 'must_register', 'master user must register';
is $u->{role}, 'master', 'role master';
is $u->{org}, 'ORG1', 'in ORG1';

# The stored hash is argon2id and verifies the letter's password.
my $hash = `sqlite3 $dir/certgate.db "SELECT password_hash FROM users WHERE id = 'master01'"`;
chomp $hash;
like $hash, qr/^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=1\$/, 'password stored as argon2id PHC';
my ($m, $t) = $hash =~ /m=(\d+),t=(\d+)/;
ok $m >= 19456 && $t >= 2, "argon2id at m=$m t=$t";

# --- general users: a letter as HTML, and one set up for automation -------------------------

$r = $ctl->run('user', 'add-general', 'ORG1', 'general01', '--mail', 'g1@example.com',
    '--html', '--out', "$dir/letter-general01.html");
is $r->{rc}, 0, 'user add-general --html --out' or diag $r->{err};
my $html = Certgate::Ctl::slurp("$dir/letter-general01.html");
like $html, qr/<html/, 'letter is an HTML page';
like $html, qr/general01/, 'HTML letter holds the user ID';
is((stat "$dir/letter-general01.html")[2] & 0777, 0600, 'letter file is 0600');

$r = $ctl->run({ stdin => "Auto\$Pass9\n" }, 'user', 'add-general', 'ORG1', 'robot001',
    '--mail', 'robot@example.com', '--password-stdin');
is $r->{rc}, 0, 'user add-general --password-stdin' or diag $r->{err};
unlike $r->{out}, qr/Auto\$Pass9/, 'the password is not echoed';
is $ctl->json('user', 'show', 'robot001')->{state}, 'active', 'registered at once';

# --- reset (R17) --------------------------------------------------------------------------------

$r = $ctl->run('user', 'reset', 'master01');
is $r->{rc}, 0, 'user reset' or diag $r->{err};
my ($pw2) = $r->{out} =~ /Initial password:\s*(\S+)$/m;
ok Certgate::Ctl::meets_r9($pw2 // ''), 'reset letter holds a new R9 password';
isnt $pw2, $pw1, 'and it is a new one';
is $ctl->json('user', 'show', 'master01')->{state}, 'must_register', 'must register again';

# --- lock, unlock, block, unblock (R10) ---------------------------------------------------------

$r = $ctl->run('user', 'lock', 'general01');
is $r->{rc}, 0, 'user lock';
$u = $ctl->json('user', 'show', 'general01');
ok $u->{locked_until} > time + 3000, 'locked for an hour';
$r = $ctl->run('user', 'unlock', 'general01');
is $r->{rc}, 0, 'user unlock';
is $ctl->json('user', 'show', 'general01')->{locked_until}, 0, 'lock released';

# An operator's unlock is no successful login: the lock count goes on (R10).
$r = $ctl->run('user', 'lock', 'general01', '--minutes', '1');
unlike $r->{out}, qr/blocked/, 'the second lock does not block';
$r = $ctl->run('user', 'lock', 'general01', '--minutes', '1');
like $r->{out}, qr/blocked/, 'the third lock blocks';
ok $ctl->json('user', 'show', 'general01')->{blocked}, 'general01 blocked';
$r = $ctl->run('user', 'unblock', 'general01');
is $r->{rc}, 0, 'user unblock';
$u = $ctl->json('user', 'show', 'general01');
ok !$u->{blocked}, 'block lifted';
is $u->{lock_count}, 0, 'lock count cleared';

$r = $ctl->run('user', 'block', 'master01');
is $r->{rc}, 0, 'user block (the bank blocks a master)';
$r = $ctl->run('user', 'unblock', 'master01');
is $r->{rc}, 0, 'user unblock master01';

# --- certificates, revocation, CRL ---------------------------------------------------------------

my $serial = Certgate::Ctl::make_client_cert($dir, 'general01');
$r = $ctl->run('cert', 'import', "$dir/general01.pem");
is $r->{rc}, 0, 'cert import' or diag $r->{err};
my $certs = $ctl->json('cert', 'list', '--user', 'general01');
is $certs->[0]{serial}, $serial, 'cert list shows the serial as openssl prints it';
is $certs->[0]{status}, 'issued', 'issued';
is scalar @{ $ctl->json('cert', 'list', '--expiring-within', '31d') }, 1,
    'expiring within 31 days';
is scalar @{ $ctl->json('cert', 'list', '--expiring-within', '10d') }, 0,
    'not within 10 days';

$r = $ctl->run('cert', 'revoke', lc($serial), '--reason', 'keyCompromise');
is $r->{rc}, 0, 'cert revoke (any case)' or diag $r->{err};
like $r->{out}, qr/revoked certificate $serial/, 'says what it revoked';
is $ctl->json('cert', 'show', $serial)->{status}, 'revoked', 'status revoked';

$r = $ctl->run('crl', '--out', "$dir/crl.pem");
is $r->{rc}, 0, 'crl --out crl.pem' or diag $r->{err};
my $text = `openssl crl -in $dir/crl.pem -noout -text -CAfile $dir/ca.pem 2>&1`;
like $text, qr/verify OK/, 'openssl verifies the CRL against the CA';
like $text, qr/Serial Number: $serial/, 'CRL lists the revoked serial';
like $text, qr/Key Compromise/, 'with its reason';

$r = $ctl->run('crl', '--out', "$dir/crl.der");
is $r->{rc}, 0, 'crl --out crl.der';
like `openssl crl -inform DER -in $dir/crl.der -noout -text 2>&1`, qr/Serial Number: $serial/,
    'DER CRL lists it too';

# --- audit: every step, in order ------------------------------------------------------------------

my $events = $ctl->json('audit');
my @kinds = map { "$_->{kind} $_->{subject}" } @$events;
is_deeply \@kinds, [
    'store.init store',
    'org.added ORG1',
    'user.added master01',
    'user.added general01',
    'user.added robot001',
    'user.reset master01',
    'user.locked general01',
    'user.unlocked general01',
    'user.locked general01',
    'user.locked general01',
    'user.blocked general01',
    'user.unblocked general01',
    'user.blocked master01',
    'user.unblocked master01',
    "cert.issued $serial",
    "cert.revoked $serial",
    'crl.signed crl',
    'crl.signed crl',
], 'audit shows every step in order' or diag explain \@kinds;
my @ids = map { $_->{id} } @$events;
is_deeply \@ids, [1 .. @ids], 'events numbered 1, 2, 3, ...';
like $events->[4]{detail}, qr/password-stdin/, 'audit records the --password-stdin registration';
like $events->[2]{actor}, qr/^operator:/, 'actor is the operator';

my $since = $ctl->json('audit', '--since', 15);
is_deeply [map { $_->{id} } @$since], [16, 17, 18], 'audit --since';
my $mine = $ctl->json('audit', '--user', 'general01');
ok((grep { $_->{kind} eq 'cert.revoked' } @$mine), 'audit --user includes its certificates');

$r = $ctl->run('audit');
like $r->{out}, qr/^1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0900/m, 'text audit in Asia/Tokyo';

# --- the store can also be named directly -----------------------------------------------------------

$r = $ctl->run({ global => ['--store', "sqlite:$dir/certgate.db"] }, 'user', 'list');
like $r->{out}, qr/master01/, '--store URI works without nginx.conf';
$r = $ctl->run({ global => ['--store', "$dir/certgate.db"] }, 'org', 'list');
like $r->{out}, qr/ORG1/, '--store with a bare path';

# --- help -----------------------------------------------------------------------------------------------

$r = $ctl->run('--help');
is $r->{rc}, 0, '--help';
like $r->{out}, qr/Exit codes:/, '--help documents exit codes';
for my $cmd (['init'], ['migrate'], ['status'], [qw(org add)], [qw(org list)], [qw(org show)],
    [qw(user add-master)], [qw(user add-general)], [qw(user reset)], [qw(user lock)],
    [qw(user unlock)], [qw(user block)], [qw(user unblock)], [qw(user disable)],
    [qw(user list)], [qw(user show)], [qw(cert list)], [qw(cert show)], [qw(cert import)],
    [qw(cert revoke)], ['crl'], ['audit'], [qw(mail list)], [qw(mail retry)])
{
    $r = $ctl->run(@$cmd, '--help');
    ok $r->{rc} == 0 && $r->{out} =~ /^usage: certgatectl .*\Q$cmd->[-1]\E/,
        "@$cmd --help";
}

done_testing;

# --- helpers -------------------------------------------------------------------------------------------

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
}

