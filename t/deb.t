# The Debian package (make deb): installed into this machine's nginx, its
# files are where Debian's libnginx-mod-* packages put theirs, its load file
# is enabled, nginx -t passes with a conf example that loads the module the
# Debian way, the login screen is served, and it is removed cleanly.
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Certgate::Test;

plan skip_all => 'installing a package needs root (run as root, as CI does)' if $> != 0;

my ($deb) = sort glob("$Certgate::Test::ROOT/build-deb/libnginx-mod-http-certgate_*_amd64.deb");
ok($deb, 'make deb built the package') or BAIL_OUT('no build-deb/*.deb: run make deb first');

my $pkg = 'libnginx-mod-http-certgate';
my $enabled = '/etc/nginx/modules-enabled/50-mod-http-certgate.conf';

my ($rc, $out) = Certgate::Test::run('dpkg', '-i', $deb);
is($rc, 0, 'dpkg -i installs it') or diag $out;

subtest 'files where Debian puts them' => sub {
    my ($rc, $list) = Certgate::Test::run('dpkg', '-L', $pkg);
    is($rc, 0, 'dpkg -L');
    for my $f (qw(
        /usr/lib/nginx/modules/ngx_http_certgate_module.so
        /usr/share/nginx/modules-available/mod-http-certgate.conf
        /usr/sbin/certgatectl
        /usr/share/man/man8/certgatectl.8.gz
        /usr/share/man/man5/ngx_http_certgate_module.5.gz
        /usr/share/perl5/Test/Nginx/Certgate.pm
        /var/lib/certgate
    )) {
        like($list, qr{^\Q$f\E$}m, "lists $f");
        ok(-e $f, "$f is there");
    }
    is(readlink($enabled), '/usr/share/nginx/modules-available/mod-http-certgate.conf',
        'the load file is enabled in modules-enabled');
    like(Certgate::Test::read_file($enabled) // '', qr{^load_module modules/ngx_http_certgate_module\.so;$}m,
        'it loads the module');
    my @st = stat '/var/lib/certgate';
    is(sprintf('%04o', $st[2] & 07777), '0750', '/var/lib/certgate is 0750');
    is(scalar getpwuid($st[4]), 'www-data', 'owned by www-data');
    my ($mrc, $man) = Certgate::Test::run('man', '-w', 'certgatectl');
    is($mrc, 0, 'man certgatectl is found') or diag $man;
    ($mrc, $man) = Certgate::Test::run('/usr/sbin/certgatectl', '--help');
    is($mrc, 0, 'the installed certgatectl runs');
    my ($drc, $deps) = Certgate::Test::run('dpkg-query', '-W', '-f', '${Depends}', $pkg);
    my ($abi) = `dpkg-query -W -f '\${Provides}' nginx` =~ /(nginx-abi-[\w.-]+)/;
    like($deps, qr/\Q$abi\E/, "depends on the exact nginx ABI it was built against ($abi)");
};

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $d = $t->dir;

# conf-examples/certgate.conf, pointed at this suite's files and ports, and
# loading the module through the package's enabled load file.
my $https = $t->port('https');
my $conf = Certgate::Test::read_file("$Certgate::Test::ROOT/conf-examples/certgate.conf");
$conf =~ s{^load_module \S+;}{include /etc/nginx/modules-enabled/*.conf;}m;
$conf =~ s{^user www-data;}{user root root;}m;
$conf =~ s{/etc/certgate/|/var/lib/certgate/}{$d/}g;
$conf =~ s{/etc/ssl/certs/\S+\.crt}{$d/server.crt}g;
$conf =~ s{/etc/ssl/private/\S+\.key}{$d/server.key}g;
$conf =~ s{/var/log/nginx/}{$d/logs/}g;
$conf =~ s{listen 443 ssl;}{listen 127.0.0.1:$https ssl;}g;
$conf =~ s{127\.0\.0\.1:11211}{127.0.0.1:@{[$t->port('memcached')]}}g;
$conf =~ s{smtp://127\.0\.0\.1:25}{smtp://127.0.0.1:@{[$t->port('smtp')]}}g;
$conf =~ s{^worker_processes auto;}{worker_processes 1;\ndaemon off;\npid $d/nginx.pid;}m;
$conf =~ s{^(http \{\n)}{$1    client_body_temp_path $d/body;\n    proxy_temp_path $d/proxy;\n}m;
Certgate::Test::write_file("$d/pkg.conf", $conf);

($rc, $out) = Certgate::Test::run('/usr/sbin/nginx', '-t', '-c', "$d/pkg.conf", '-e', "$d/logs/error-t.log");
is($rc, 0, 'nginx -t passes with the conf example and the package\'s load file') or diag $out;

($rc, $out) = Certgate::Test::run('/usr/sbin/certgatectl', '-c', "$d/pkg.conf", 'status');
is($rc, 0, 'the installed certgatectl reads the store through nginx.conf') or diag $out;

subtest 'the packaged module serves the login screen' => sub {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        open STDOUT, '>>', "$d/logs/pkg-nginx.log";
        open STDERR, '>&', \*STDOUT;
        exec '/usr/sbin/nginx', '-c', "$d/pkg.conf", '-e', "$d/logs/error.log";
        exit 127;
    }
    $t->{pids}{nginx} = $pid;    # the harness stops it
    $t->wait_port($https, 'nginx');
    my $r = $t->get('/certgate/');
    is($r->{status}, 200, 'GET /certgate/: 200');
    like($r->{body}, qr/ログイン.*マスターユーザーの初期登録.*一般ユーザーの初期登録.*電子証明書発行/s,
        'the four buttons');
    $t->stop_nginx;
};

($rc, $out) = Certgate::Test::run('dpkg', '--purge', $pkg);
is($rc, 0, 'dpkg --purge removes it') or diag $out;
ok(!-e '/usr/lib/nginx/modules/ngx_http_certgate_module.so', 'the module is gone');
ok(!-e '/usr/sbin/certgatectl', 'certgatectl is gone');
ok(!-l $enabled && !-e $enabled, 'the load file is no longer enabled');
($rc, $out) = Certgate::Test::run('/usr/sbin/nginx', '-t', '-c', "$d/pkg.conf", '-e', "$d/logs/error-t.log");
isnt($rc, 0, 'nginx -t now fails: the conf used the package\'s module');
like($out, qr/unknown directive "certgate_/, 'for want of the module');

$t->done(allow => qr/unknown directive "certgate_/);
done_testing;
