package Certgate::Demo;

# What make demo (t/demo) and make demo-fleet (t/demo-fleet) share: the
# background processes and their pid files, the demo CA's server
# certificate, the demo organisation and its users, the business
# application's page. Each function takes the demo's directory; nothing here
# knows the ports of either demo.

use strict;
use warnings;
use Exporter 'import';
use File::Path qw(make_path);
use IO::Socket::INET;
use POSIX qw(setsid);
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(say_line fail run_or_die port_busy wait_port read_pid running daemon stop_pids
    server_cert demo_org read_logins demo_app_page nginx_temp_paths);

# The prefix of every line the demo prints ("certgate demo", "certgate demo-fleet").
our $NAME = 'certgate demo';

# What a failed start runs before it exits (stops what it had started).
our $ON_FAIL;

sub say_line { print "$NAME: @_\n" }

sub fail {
    print STDERR "$NAME: @_\n";
    if (my $undo = $ON_FAIL) {
        undef $ON_FAIL;
        $undo->();
    }
    exit 1;
}

sub run_or_die {
    my (@cmd) = @_;
    my $out = qx{@{[join ' ', map { quotemeta } @cmd]} 2>&1};
    fail("@cmd failed:\n$out") if $? != 0;
    return $out;
}

# port_busy(port) on 127.0.0.1, or port_busy(port, address).
sub port_busy {
    my ($p, $addr) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $addr // '127.0.0.1', PeerPort => $p, Proto => 'tcp');
    close $s if $s;
    return defined $s;
}

sub wait_port {
    my ($p, $what, $logs, $addr) = @_;
    for (1 .. 100) { return if port_busy($p, $addr); sleep 0.1 }
    fail("$what did not start on " . ($addr // '127.0.0.1') . ":$p; see $logs/");
}

sub read_pid {
    my ($f) = @_;
    open my $fh, '<', $f or return;
    my $pid = <$fh>;
    close $fh;
    chomp $pid if defined $pid;
    return $pid && $pid =~ /^\d+$/ ? $pid : undef;
}

# Whether $pid still runs: a zombie (exited, not yet reaped by whoever
# inherited it) does not.
sub running {
    my ($pid) = @_;
    return 0 unless kill 0, $pid;
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    my $stat = <$fh> // '';
    close $fh;
    return $stat !~ /^\d+ \(.*\) Z/s;
}

# Ends the processes of $dir/<name>.pid for each name (TERM to all, then up
# to 5 s for each); returns how many were running.
sub stop_pids {
    my ($dir, @names) = @_;
    my @pids;
    for my $name (@names) {
        my $pid = read_pid("$dir/$name.pid");
        next unless $pid && running($pid);
        kill 'TERM', $pid;
        push @pids, $pid;
    }
    for my $pid (@pids) {
        for (1 .. 50) { last unless running($pid); sleep 0.1 }
    }
    # After the wait: nginx removes its own pid file as it exits.
    unlink map { "$dir/$_.pid" } @names;
    return scalar @pids;
}

# A background process that outlives make, its pid in $dir/$name.pid and its
# output in $dir/logs/$name.log.
sub daemon {
    my ($dir, $name, @cmd) = @_;
    my $pid = fork() // fail("fork: $!");
    if ($pid == 0) {
        setsid();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/logs/$name.log";
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    open my $fh, '>', "$dir/$name.pid" or fail("$dir/$name.pid: $!");
    print $fh "$pid\n";
    close $fh;
}

# $dir/server.{key,crt}: a server certificate from the demo CA for localhost
# and the given addresses.
sub server_cert {
    my ($dir, @addresses) = @_;
    run_or_die('openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
        '-nodes', '-subj', '/CN=localhost', '-keyout', "$dir/server.key", '-out', "$dir/server.csr");
    open my $ext, '>', "$dir/server.ext" or fail($!);
    print $ext 'subjectAltName=DNS:localhost' . join('', map { ",IP:$_" } @addresses)
        . "\nextendedKeyUsage=serverAuth\n";
    close $ext;
    run_or_die('openssl', 'x509', '-req', '-days', '365', '-set_serial', int(time()), '-in',
        "$dir/server.csr", '-CA', "$dir/ca.crt", '-CAkey', "$dir/ca.key", '-extfile',
        "$dir/server.ext", '-out', "$dir/server.crt");
}

# The demo organisation in $store: a master user with an initial password
# (the bank's letter), and a general user who can get a certificate at once
# with $user_password. The initial password goes to $dir/demo-logins.txt,
# which says that the demo's data is complete; returns it.
sub demo_org {
    my ($ctl, $store, $dir, $user_password) = @_;
    run_or_die($ctl, '--store', $store, 'org', 'add', 'DEMO01', '--name', 'デモ株式会社');
    my $master = run_or_die($ctl, '--store', $store, '--json', 'user', 'add-master', 'DEMO01',
        'demomaster1', '--mail', 'master@demo.example', '--name', 'デモ 太郎');
    my ($initial) = $master =~ /"initial_password":"((?:[^"\\]|\\.)*)"/
        or fail("no initial password in: $master");
    $initial =~ s/\\(.)/$1/g;
    my $q = sub { my $s = shift; $s =~ s/'/'\\''/g; "'$s'" };
    my $general = qx{echo '$user_password' | @{[$q->($ctl)]} --store @{[$q->($store)]} user add-general DEMO01 demouser1 --mail user1\@demo.example --name 'デモ 花子' --password-stdin 2>&1};
    fail("add-general failed: $general") if $?;
    open my $fh, '>', "$dir/demo-logins.txt" or fail("$dir/demo-logins.txt: $!");
    print $fh "$initial\n";
    close $fh;
    return $initial;
}

# The master's initial password of an earlier run, or undef.
sub read_logins {
    my ($dir) = @_;
    open my $fh, '<', "$dir/demo-logins.txt" or return;
    chomp(my $initial = <$fh> // '');
    close $fh;
    return $initial;
}

# nginx's temp paths under $prefix (http{} lines).
sub nginx_temp_paths {
    my ($prefix) = @_;
    return join '', map { "    ${_}_temp_path $prefix/tmp-" . ($_ =~ s/client_body/body/r) . ";\n" }
        qw(client_body proxy fastcgi uwsgi scgi);
}

# The demo's business application: certgate's frame (docs/frame.md), then the
# application's own page. $node: a line naming the node that served it.
sub demo_app_page {
    my ($node) = @_;
    $node = $node ? "\n<p class=\"cg-app-node\">$node</p>" : '';
    return <<"HTML";
<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>賃金控除データ送信 - デモ業務アプリケーション</title>
<link rel="stylesheet" href="/certgate/assets/certgate.css">
</head>
<body>
<header class="cg-header"><p class="cg-system">デモ業務アプリケーション（賃金控除事務支援）</p></header>
<nav class="cg-frame" aria-label="ログイン中のユーザー">
  <p class="cg-frame-who"><span class="cg-frame-item"><span class="cg-label">ユーザーID</span> <span class="cg-frame-user"><!--# echo var="certgate_user" --></span></span>
  <span class="cg-frame-item"><span class="cg-label">団体</span> <span class="cg-frame-org"><!--# echo var="certgate_org" --></span></span></p>
  <!--# if expr="\$certgate_admin_url" --><p class="cg-frame-links"><a href="<!--# echo var="certgate_admin_url" -->">一般ユーザー管理</a></p><!--# endif -->
  <form class="cg-frame-logout" method="post" action="<!--# echo var="certgate_logout_url" -->"><input type="hidden" name="csrf_token" value="<!--# echo var="certgate_csrf_token" -->"><button type="submit">ログアウト</button></form>
</nav>
<main class="cg-main" id="main">
<h1>賃金控除データ送信</h1>
<p class="cg-app-lead">業務アプリケーションの画面です。certgate のログインを通過しました。</p>
<p>電子証明書の有効期限まで残り <!--# echo var="certgate_cert_days_left" --> 日です。</p>$node
</main>
</body>
</html>
HTML
}

1;
