# The PostgreSQL store (issue 15): nginx -t checks it and names what is
# wrong, certgatectl works on it, `store copy` moves a populated SQLite
# store into it with matching counts and checksums, and one nginx node
# logs a user in against it. The server is a throw-away one (t/lib/pgtmp).
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Time::HiRes qw(sleep time);
use Certgate::Test;

my $pgtmp = "$Certgate::Test::ROOT/t/lib/pgtmp";
my $pg_port = $ENV{CERTGATE_PG_PORT} || Certgate::Test::free_port();
# pgtmp runs the server as user postgres when root: the folder must let it in.
my $pg_parent = tempdir('certgate-pg-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0711, $pg_parent;
my $pg_dir = "$pg_parent/pg";
my ($rc, $base) = Certgate::Test::run($pgtmp, 'start', $pg_dir, $pg_port);
die "pgtmp start: $base" if $rc;
chomp $base;
END { system($pgtmp, 'destroy', $pg_dir) if $pg_dir }

# Each part of the suite gets a schema of its own in the one database.
sub schema_uri {
    my ($schema) = @_;
    psql("CREATE SCHEMA $schema");
    return "$base&options=-csearch_path%3D$schema";
}

sub psql {
    my ($sql, $schema) = @_;
    my ($rc, $out) = Certgate::Test::run('psql', '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1',
        '-h', '127.0.0.1', '-p', $pg_port, '-U', 'certgate', '-d', 'certgate',
        '-c', ($schema ? "SET search_path = $schema; " : '') . $sql);
    die "psql $sql: $out" if $rc;
    chomp $out;
    return $out;
}

my $main = schema_uri('s_main');
my $t = Certgate::Test->new(store => $main);   # certgatectl init --demo-ca on PostgreSQL
$t->start_memcached;
$t->start_smtp;
$t->write_conf(<<'EOF');
    %%CERTGATE%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location / { return 200 "user=$http_x_certgate_user org=$http_x_certgate_org\n"; }
    }
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            proxy_set_header X-Certgate-User $certgate_user;
            proxy_set_header X-Certgate-Org $certgate_org;
            proxy_pass http://127.0.0.1:%%HTTP_PORT%%;
        }
    }
EOF
my $conf = Certgate::Test::read_file($t->dir . '/nginx.conf');

# nginx.conf with another certgate_store line, checked by nginx -t.
sub nginx_t_with_store {
    my ($uri, $name) = @_;
    (my $text = $conf) =~ s{certgate_store [^;]+;}{certgate_store $uri;};
    my $path = $t->dir . "/$name.conf";
    Certgate::Test::write_file($path, $text);
    return $t->nginx_t($path);
}

subtest 'nginx -t checks the PostgreSQL store' => sub {
    my ($rc, $out) = $t->nginx_t;
    is($rc, 0, 'a migrated store passes') or diag($out);
    unlike($out, qr/s3cret/, 'nothing of a password');

    my $empty = schema_uri('s_empty');
    ($rc, $out) = nginx_t_with_store($empty, 'empty');
    isnt($rc, 0, 'an empty schema fails');
    like($out, qr/is empty: run certgatectl init/, 'and says to run certgatectl init');
    like($out, qr/empty\.conf:\d+/, 'naming the certgate_store line');

    my $old = schema_uri('s_old');
    my ($irc, $iout) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl',
        '--store', $old, 'init');
    is($irc, 0, 'certgatectl init on another schema') or diag($iout);
    psql("UPDATE certgate_meta SET value = '3' WHERE key = 'schema_version'", 's_old');
    ($rc, $out) = nginx_t_with_store($old, 'old');
    isnt($rc, 0, 'an older schema version fails');
    like($out, qr/schema version 3, this certgate needs 5: run certgatectl migrate/, 'naming both versions');
    psql("UPDATE certgate_meta SET value = '99' WHERE key = 'schema_version'", 's_old');
    ($rc, $out) = nginx_t_with_store($old, 'new');
    like($out, qr/schema version 99: this certgate is older than the store/, 'a newer one too');

    my $nowhere = Certgate::Test::free_port();
    ($rc, $out) = nginx_t_with_store(
        "postgresql://certgate:s3cret\@127.0.0.1:$nowhere/certgate?connect_timeout=2", 'down');
    isnt($rc, 0, 'an unreachable server fails');
    like($out, qr/cannot connect to PostgreSQL at host 127\.0\.0\.1 port $nowhere/, 'naming host and port');
    unlike($out, qr/s3cret/, 'never the password');
};

my $pw = 'Passw0rd!';
subtest 'certgatectl against PostgreSQL' => sub {
    my ($rc, $out) = $t->certgatectl('status');
    is($rc, 0, 'status') or diag($out);
    like($out, qr{store postgresql://certgate\@127\.0\.0\.1:$pg_port/certgate}, 'describes the store');
    $t->add_org('ORG001');
    $t->add_user('ORG001', 'master01', $pw, master => 1);
    $t->add_user('ORG001', 'general1', $pw);
    ($rc, $out) = $t->certgatectl('--json', 'user', 'list');
    is($rc, 0, 'user list');
    my $users = decode_json($out);
    $users = $users->{users} if ref $users eq 'HASH';
    is_deeply([sort map { $_->{user_id} } @$users], [qw(general1 master01)], 'both users, read back');
    ($rc, $out) = $t->certgatectl('user', 'add-master', 'ORG001', 'master02', '--mail', 'm2@example.test');
    is($rc, 3, 'a second master: conflict (exit 3)');
    like($out, qr/already has master user master01/, 'saying who');
    is(psql('SELECT count(*) FROM users', 's_main'), 2, 'the rows are in PostgreSQL');
};

subtest 'one nginx node: login and a protected request on PostgreSQL' => sub {
    $t->start_nginx;
    my $cert = $t->issue_certificate('general1', $pw);
    ok($cert->{ok}, 'a certificate issued through the portal') or diag(explain($cert));
    my $jar = $t->jar;
    my $r = $t->login('general1', $pw, cert => $cert->{name}, jar => $jar);
    ok($r->{json}{ok}, 'login') or diag(explain($r->{json}));
    my $a = $t->get('/app/page', cert => $cert->{name}, cookies => $jar);
    is($a->{status}, 200, 'the protected location answers');
    like($a->{body}, qr/user=general1 org=ORG001/, 'with the user and organisation');
    my @login = grep { $_->{kind} eq 'user.login' && $_->{subject} eq 'general1' } $t->audit;
    ok(@login >= 1, 'the login is in the audit trail (certgatectl audit on PostgreSQL)');
    my ($rc, $out) = $t->certgatectl('cert', 'list', '--user', 'general1');
    like($out, qr/\Q$cert->{serial}\E/, 'cert list shows it');
    is(psql("SELECT status FROM certificates WHERE serial = '$cert->{serial}'", 's_main'), 'issued',
        'issued in PostgreSQL');
    $t->stop_nginx;
};

subtest 'store copy: a populated SQLite store into an empty PostgreSQL store' => sub {
    my $s = Certgate::Test->new;   # SQLite
    $s->add_org($_) for qw(ORG001 ORG002);
    $s->add_user('ORG001', 'master01', $pw, master => 1);
    $s->add_user('ORG001', $_, $pw) for qw(general1 general2 general3);
    $s->add_user('ORG002', 'master02', $pw, master => 1);
    $s->client_cert_until("user$_", time + 86400 * (10 + $_), store_user => "general$_", name => "c$_")
        for 1 .. 3;
    my ($rc, $out) = $s->certgatectl('--json', 'cert', 'list');
    my $certs = decode_json($out);
    $certs = $certs->{certificates} if ref $certs eq 'HASH';
    $s->certgatectl('cert', 'revoke', $certs->[0]{serial}, '--reason', 'keyCompromise');
    $s->certgatectl('user', 'lock', 'general2');
    $s->certgatectl('user', 'block', 'general3');
    $s->certgatectl('user', 'reset', 'general1', '--out', $s->dir . '/letter.txt');
    $s->sql("INSERT INTO outbox (recipient, subject, body, state, created_at) VALUES "
        . "('a\@example.test', '認証コード', '123456', 'queued', 1), "
        . "('b\@example.test', 'お知らせ', 'body', 'sent', 2), ('c\@example.test', 's', 'x', 'failed', 3)");
    $s->sql("DELETE FROM outbox WHERE id = 2");   # a gap in the ids
    $s->sql("INSERT INTO auth_streaks (user_id, epoch, failures) VALUES ('nosuch01', 3, 2)");
    $s->sql("INSERT INTO auth_budgets (budget, window_start, used) VALUES ('code_try:general1', 5, 1)");
    my $events = $s->sql('SELECT count(*) FROM events');
    chomp $events;
    ok($events > 10, "the source holds $events events");
    my $from = $s->store_uri;

    my $to = schema_uri('s_copy');
    ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', 'store', 'copy',
        '--from', $from, '--to', $to);
    is($rc, 0, 'store copy') or diag($out);
    for my $table (qw(certgate_meta organisations users certificates events outbox auth_streaks auth_budgets)) {
        like($out, qr/^\s+$table\s+(\d+) \/ \1\s+([0-9a-f]{16}) \/ \2 ok$/m, "$table: same rows and checksum, printed");
    }
    like($out, qr/every table has the same rows and checksum/, 'and says so');
    is(psql('SELECT count(*) FROM events', 's_copy'), $events, 'every event copied');
    is(psql('SELECT string_agg(id::text, \',\' ORDER BY id) FROM outbox', 's_copy'), '1,3', 'ids kept (the gap too)');
    is(psql("SELECT state FROM users WHERE id = 'general3'", 's_copy'), 'active', 'user state kept');
    is(psql("SELECT blocked FROM users WHERE id = 'general3'", 's_copy'), 1, 'and the block');

    my @ctl = (Certgate::Test::build_dir() . '/certgatectl', '--store', $to);
    ($rc, $out) = Certgate::Test::run(@ctl, 'status');
    is($rc, 0, 'the copy is a certgate store') or diag($out);
    ($rc, $out) = Certgate::Test::run(@ctl, '--json', 'user', 'list');
    my $users = decode_json($out);
    $users = $users->{users} if ref $users eq 'HASH';
    is(scalar @$users, 5, 'certgatectl user list reads the five users');
    ($rc, $out) = Certgate::Test::run(@ctl, 'org', 'add', 'ORG003', '--name', 'Third');
    is($rc, 0, 'a write after the copy (the sequences were set)') or diag($out);
    is(psql("SELECT max(id) FROM events", 's_copy'), $events + 1, 'the next event id follows the copied ones');
    ($rc, $out) = Certgate::Test::run(@ctl, '--json', 'audit', '--limit', '100000');
    is($rc, 0, 'certgatectl audit on the copy');

    ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', 'store', 'copy',
        '--from', $from, '--to', $to);
    is($rc, 4, 'a second copy into the same store: refused (exit 4)');
    like($out, qr/is not empty .* store copy writes only into an empty store/, 'saying why');

    # An init'ed target is still empty; --json gives the figures.
    my $fresh = schema_uri('s_copy2');
    Certgate::Test::run($ctl[0], '--store', $fresh, 'init');
    ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', '--json',
        'store', 'copy', '--from', $from, '--to', $fresh);
    is($rc, 0, 'store copy into an init\'ed store') or diag($out);
    my $j = decode_json($out);
    ok($j->{same}, 'json: same');
    is(scalar @{$j->{tables}}, 8, 'eight tables');
    is((grep { $_->{table} eq 'events' } @{$j->{tables}})[0]{rows_to}, $events, 'events counted');

    ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', 'store', 'copy',
        '--from', $to, '--to', $fresh);
    is($rc, 1, 'from PostgreSQL: a usage error');
};

# A store restored (pg_dump) into a new PostgreSQL server: its transaction
# ids start low again, below the feed's cursor. The node must see the gap,
# load the set again and refuse a revocation made after the restore (an
# xid-only cursor would wait, skipping it, until the new server's ids passed).
subtest 'the store restored into another PostgreSQL server: the gap is found, nothing skipped' => sub {
    my $pgbin = '/usr/lib/postgresql/15/bin';
    $t->start_nginx;
    $t->add_user('ORG001', 'general4', $pw);
    my $name = $t->client_cert_until('general4', time + 86400, store_user => 'general4', name => 'restored');
    my ($serial) = psql("SELECT serial FROM certificates WHERE user_id = 'general4'", 's_main');
    my $jar = $t->jar;
    my $l = $t->login('general4', $pw, cert => $name, jar => $jar);
    ok($l->{json}{ok}, 'general4 logged in') or diag(explain($l->{json}));
    my $app = sub { $t->get('/app/page', cert => $name, cookies => $jar)->{status} };
    is($app->(), 200, 'the app passes');
    # Many transactions on the old server, each its own (psql -f, autocommit),
    # so its ids are well above a new server's; the feed's cursor follows.
    my $burn = $t->dir . '/burn.sql';
    Certgate::Test::write_file($burn, "SELECT pg_current_xact_id();\n" x 3000);
    my ($rc, $out) = Certgate::Test::run('psql', '-X', '-q', '-o', '/dev/null', '-h', '127.0.0.1', '-p', $pg_port,
        '-U', 'certgate', '-d', 'certgate', '-f', $burn);
    is($rc, 0, '3000 transactions on the old server') or diag($out);
    sleep 1.5;    # a poll or two: the cursor is at the old server's xmin
    my $dump = $t->dir . '/store.sql';
    ($rc, $out) = Certgate::Test::run("$pgbin/pg_dump", '-h', '127.0.0.1', '-p', $pg_port, '-U', 'certgate',
        '-d', 'certgate', '-f', $dump);
    is($rc, 0, 'pg_dump') or diag($out);
    ($rc, $out) = Certgate::Test::run($pgtmp, 'destroy', $pg_dir);
    is($rc, 0, 'the old server is gone') or diag($out);
    ($rc, $out) = Certgate::Test::run($pgtmp, 'start', $pg_dir, $pg_port);
    is($rc, 0, 'a new server on the same address') or diag($out);
    ($rc, $out) = Certgate::Test::run('psql', '-X', '-q', '-o', '/dev/null', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1',
        '-p', $pg_port, '-U', 'certgate', '-d', 'certgate', '-f', $dump);
    is($rc, 0, 'the dump restored into it') or diag($out);
    my $gap = qr/\[error\].*events do not continue from where the feed read/;
    my $t0 = time;
    sleep 0.2 while time - $t0 < 15 && !grep { /$gap/ } split /\n/, $t->error_log;
    ok((grep { /$gap/ } split /\n/, $t->error_log), 'the node found the gap and said so')
        or diag($t->error_log);
    $t0 = time;
    sleep 0.2 while time - $t0 < 10 && $app->() != 200;
    is($app->(), 200, 'the session still passes once the set is loaded again');
    ($rc, $out) = $t->certgatectl('cert', 'revoke', $serial, '--reason', 'keyCompromise');
    is($rc, 0, 'a revocation on the restored store') or diag($out);
    $t0 = time;
    sleep 0.1 while time - $t0 < 3 && $app->() == 200;
    my $took = time - $t0;
    ok($took < 2, sprintf('refused %.2f s later: its event was not skipped', $took));
    $t->stop_nginx;
};

$t->done(allow => qr{\[emerg\].*(?:is empty: run certgatectl init|has schema version|cannot connect to PostgreSQL)|events do not continue from where the feed read|certgate: revocation feed: .*(?:store|PostgreSQL)});
done_testing;
