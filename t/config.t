# Configuration: every file of conf-examples/ passes nginx -t; broken
# configurations fail with an [emerg] that names the file and the line.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Certgate::Test;

my $t = Certgate::Test->new;
my $d = $t->dir;
my $module = Certgate::Test::build_dir() . '/ngx_http_certgate_module.so';

# A sysadmin's example, pointed at this suite's files and ports.
sub localise {
    my ($text) = @_;
    my $https = $t->port('https');
    $text =~ s{^load_module \S+;}{load_module $module;}m;
    $text =~ s{^user www-data;}{$> == 0 ? 'user root root;' : ''}me;
    $text =~ s{/etc/certgate/|/var/lib/certgate/}{$d/}g;
    $text =~ s{/etc/ssl/certs/\S+\.crt}{$d/server.crt}g;
    $text =~ s{/etc/ssl/private/\S+\.key}{$d/server.key}g;
    $text =~ s{/var/log/nginx/}{$d/logs/}g;
    $text =~ s{listen 443 ssl;}{listen 127.0.0.1:$https ssl;}g;
    $text =~ s{^(events \{)}{pid $d/nginx.pid;\n$1}m;
    # nginx's default access log is not writable for a non-root tester.
    $text =~ s{^(http \{\n)}{$1    access_log $d/logs/access.log;\n}m unless $text =~ /access_log/;
    return $text;
}

# The CA being retired in all-directives.conf.
Certgate::Test::write_file("$d/ca-2025.crt", Certgate::Test::read_file("$d/other-ca.crt"));

for my $example (sort glob("$Certgate::Test::ROOT/conf-examples/*.conf")) {
    (my $name = $example) =~ s{.*/}{};
    my $conf = "$d/example-$name";
    Certgate::Test::write_file($conf, localise(Certgate::Test::read_file($example)));
    my ($rc, $out) = $t->nginx_t($conf);
    is($rc, 0, "nginx -t passes for conf-examples/$name") or diag $out;
}

# Writes a config whose http{} holds the common certgate lines, $extra, and a
# server with a portal; returns its path and the line number of the marked line.
sub broken {
    my ($name, $extra, $location) = @_;
    $location //= 'location /certgate/ { certgate_portal; }';
    my $common = $t->certgate_common;
    # Workers that can write the suite's store (nginx -t checks it).
    my $user = $> == 0 ? 'user root root;' : '';
    my $text = <<"EOF";
load_module $module;
$user
pid $d/nginx.pid;
events { }
http {
$common
$extra
    server {
        listen 127.0.0.1:@{[$t->port('https')]};
        $location
    }
}
EOF
    my $path = "$d/broken-$name.conf";
    Certgate::Test::write_file($path, $text);
    my $n = 0;
    my $line;
    for (split /\n/, $text) { $n++; $line = $n if /# <- here/ }
    return ($path, $line);
}

my @cases = (
    ['bad key type', 'certgate_key_type rsa:1024;  # <- here',
        qr{unknown key type "rsa:1024"}],
    ['missing CA file', '', qr{cannot read the certgate_ca_certificate file "/nonexistent/ca\.crt"},
        sub { $_[0] =~ s{certgate_ca_certificate \S+;}{certgate_ca_certificate /nonexistent/ca.crt;  # <- here}; }],
    ['unknown lockout unit', 'certgate_lockout 6 60x 3;  # <- here', qr{invalid lock time "60x"}],
    ['duplicate directive', 'certgate_memcached 127.0.0.1:11212;  # <- here',
        qr{"certgate_memcached" directive is duplicate}],
    ['portal outside a location', 'certgate_portal;  # <- here',
        qr{"certgate_portal" directive is not allowed here}],
    ['unknown time zone', 'certgate_timezone Mars/Olympus;  # <- here',
        qr{unknown time zone "Mars/Olympus"}],
    ['a zoneinfo file that is no zone', 'certgate_timezone zone1970.tab;  # <- here',
        qr{unknown time zone "zone1970\.tab"}],
    ['the host\'s zone by its alias', 'certgate_timezone localtime;  # <- here',
        qr{unknown time zone "localtime"}],
    ['bad memcached address', '', qr{invalid memcached address},
        sub { $_[0] =~ s{certgate_memcached \S+;}{certgate_memcached 127.0.0.1:notaport;  # <- here}; }],
    ['short secret', '', qr{holds 5 bytes; it needs at least 32},
        sub { Certgate::Test::write_file("$d/short-secret", "short"); chmod 0600, "$d/short-secret";
              $_[0] =~ s{certgate_secret \S+;}{certgate_secret $d/short-secret;  # <- here}; }],
    ['bad password rule', 'certgate_password_rule "[A-Z";  # <- here', qr{invalid pattern "\[A-Z"}],
    ['password rule: min above max', 'certgate_password_rule "^.+\z" min=9 max=3;  # <- here',
        qr{"certgate_password_rule": min is greater than max}],
    ['user ID rule: a pattern after its options',
        'certgate_userid_rule "^[a-z0-9]+\z" max=10 "[0-9]";  # <- here',
        qr{pattern "\[0-9\]" after the rule's options}],
    ['password rule: bad length', 'certgate_password_rule "^.+\z" max=ten;  # <- here',
        qr{invalid "max=ten"}],
    ['bad role', '', qr{invalid parameter "role=admin"},
        undef, 'location /x/ { certgate_require role=admin;  # <- here
        }'],
    ['a template with an error', '', qr{templates/login\.mustache: .*(?:Unclosed|unclosed)},
        sub { mkdir "$d/templates"; Certgate::Test::write_file("$d/templates/login.mustache", "{{#open}} never closed");
              $_[0] =~ s{(certgate_secret \S+;)}{$1\n    certgate_templates $d/templates;  # <- here}; }],
    ['bad code budget', 'certgate_code_budget 30 24h mails=0;  # <- here',
        qr{invalid number of code mails "mails=0"}],
    ['bad code budget window', 'certgate_code_budget 30 1x;  # <- here',
        qr{invalid code budget window "1x"}],
    ['bad source limit zone', 'certgate_source_limit 15 1h zone=1k;  # <- here',
        qr{invalid parameter "zone=1k": expected zone=<size> of at least 32k}],
    ['bad source limit', 'certgate_source_limit many 1h;  # <- here',
        qr{invalid number of failures "many"}],
    ['session timeouts reversed', 'certgate_session_timeout 9h 8h;  # <- here',
        qr{idle timeout "9h" is longer than the absolute timeout "8h"}],
);

for my $case (@cases) {
    my ($name, $extra, $expect, $edit, $location) = @$case;
    my ($path, $line) = broken($name =~ s/\W+/-/gr, $extra, $location);
    if ($edit) {
        my $text = Certgate::Test::read_file($path);
        $edit->($text);
        Certgate::Test::write_file($path, $text);
        my $n = 0;
        for (split /\n/, $text) { $n++; $line = $n if /# <- here/ }
    }
    my ($rc, $out) = $t->nginx_t($path);
    isnt($rc, 0, "$name: nginx -t fails");
    like($out, qr{\[emerg\].*$expect.* in \Q$path\E:$line\b}, "$name: the message names $path:$line")
        or diag $out;
}

# A store written by a newer certgate (schema version bumped), and a file
# that is no certgate store at all: each stops nginx -t at the certgate_store line.
my @stores = (
    ['newer schema', sub {
        my $db = "$d/newer.db";
        my ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl',
            '--store', "sqlite:$db", 'init');
        die $out if $rc;
        system('sqlite3', $db, "UPDATE certgate_meta SET value='99' WHERE key='schema_version';") == 0 or die;
        return $db;
    }, qr{newer|upgrade certgate}],
    ['not a certgate store', sub {
        my $db = "$d/other.db";
        system('sqlite3', $db, 'CREATE TABLE t(x);') == 0 or die;
        return $db;
    }, qr{not a certgate store}],
);
for my $case (@stores) {
    my ($name, $make, $expect) = @$case;
    my $db = $make->();
    my ($path) = broken($name =~ s/\W+/-/gr, '');
    my $text = Certgate::Test::read_file($path);
    $text =~ s{certgate_store \S+;}{certgate_store sqlite:$db;  # <- here};
    Certgate::Test::write_file($path, $text);
    my ($n, $line) = (0);
    for (split /\n/, $text) { $n++; $line = $n if /# <- here/ }
    my ($rc, $out) = $t->nginx_t($path);
    isnt($rc, 0, "store with $name: nginx -t fails");
    like($out, qr{\[emerg\].*$expect.* in \Q$path\E:$line\b}, "store with $name: names the certgate_store line")
        or diag $out;
}

# nginx -t checks that the workers' user can write the store and its folder
# (issue 12.9): else nginx started and every portal request answered 503.
SKIP: {
    skip 'needs root (chown, the "user" directive)', 12 unless $> == 0;
    my @nobody = getpwnam('nobody');
    skip 'no user nobody', 12 unless @nobody;
    my ($nobody_uid) = $nobody[2];
    my $group = getgrnam('nogroup') ? 'nogroup' : 'nobody';
    my $gid = getgrnam($group);
    chmod 0711, $d;    # the workers may pass through the suite's folder
    my $folder = "$d/worker-store";
    mkdir $folder;
    my $db = "$folder/certgate.db";
    my ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', '--store', "sqlite:$db", 'init');
    die $out if $rc;
    my $conf_with = sub {
        my ($name, $user) = @_;
        my ($path) = broken("store-access-$name", '');
        my $text = Certgate::Test::read_file($path);
        $text =~ s{certgate_store \S+;}{certgate_store sqlite:$db;  # <- here};
        $text =~ s{^user root root;$}{$user}m;
        Certgate::Test::write_file($path, $text);
        my ($n, $line) = (0);
        for (split /\n/, $text) { $n++; $line = $n if /# <- here/ }
        return ($path, $line);
    };
    my $fails = sub {
        my ($name, $user, $expect) = @_;
        my ($path, $line) = $conf_with->($name, $user);
        my ($rc, $out) = $t->nginx_t($path);
        isnt($rc, 0, "$name: nginx -t fails");
        like($out, qr{\[emerg\].*$expect.* in \Q$path\E:$line\b}, "$name: names the user, the path and the certgate_store line")
            or diag $out;
    };
    my $passes = sub {
        my ($name, $user) = @_;
        my ($path) = $conf_with->($name, $user);
        my ($rc, $out) = $t->nginx_t($path);
        is($rc, 0, "$name: nginx -t passes") or diag $out;
    };

    chown 0, 0, $folder, $db;
    chmod 0755, $folder;
    chmod 0600, $db;
    $fails->('store of root, mode 0600, user nobody', "user nobody $group;",
        qr{worker user "nobody" \(uid $nobody_uid.*cannot read and write the store file "\Q$db\E" \(owner uid 0, group gid 0, mode 0600\)});
    $fails->('store of root, no user directive: nginx\'s default nobody', '',
        qr{worker user "nobody".*"\Q$db\E"});
    chown $nobody_uid, -1, $db;
    $fails->('the store is nobody\'s, its folder root\'s 0755', "user nobody $group;",
        qr{worker user "nobody".*cannot create files in the store's folder "\Q$folder\E".*-wal and -shm});
    chown $nobody_uid, -1, $folder;
    $passes->('store and folder writable by nobody', "user nobody $group;");
    Certgate::Test::write_file("$db-wal", '');
    chown 0, 0, "$db-wal";
    chmod 0644, "$db-wal";
    $fails->('a -wal file left by root', "user nobody $group;", qr{"\Q$db\E-wal"});
    unlink "$db-wal";
    chown 0, $gid, $folder, $db;
    chmod 0770, $folder;
    chmod 0660, $db;
    $passes->("writable through the group ($group)", "user nobody $group;");
    $passes->('user root: root writes anything', 'user root root;');
}

$t->done(allow => qr{\[emerg\]});
done_testing;
