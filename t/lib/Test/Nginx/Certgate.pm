package Test::Nginx::Certgate;

# certgate inside a Test::Nginx::Socket suite.
#
#   use Test::Nginx::Socket 'no_plan';
#   use Test::Nginx::Certgate users => [
#       [ORG001 => 'master01', 'Passw0rd!', master => 1],
#       [ORG001 => 'general1', 'Passw0rd!'],
#   ];
#   run_tests();
#
# At `use` time it prepares what a site's certgate needs — a store with a demo
# CA, a secret, a memcached on a free loopback port, a Maildir, the users
# (through certgatectl) with a client certificate each — and logs every user
# in once through the real portal (a short-lived nginx), so the blocks can
# use real sessions. Then it adds to every block:
#
#   main_config   load_module of the certgate module;
#   http_config   the certgate_* lines, before the block's own http_config;
#   config        "front" locations in Test::Nginx's own server (port
#                 $TEST_NGINX_SERVER_PORT, plain HTTP) that proxy to the TLS
#                 server of the block, which listens on $TEST_NGINX_CERTGATE_PORT:
#                   /anon/...             no client certificate
#                   /as/<user>/...        <user>'s client certificate
#                   /session/<user>/...   <user>'s certificate and session cookie
#                   /foreign/...          a certificate of another CA
#                 every front also sends the CSRF cookie, whose token is
#                 $ENV{TEST_NGINX_CERTGATE_CSRF} (for the csrf_token form
#                 field: write the POST as `--- request eval`);
#   no_error_log  [alert], [crit] and [emerg], unless the block sets its own
#                 or is a `--- must_die` block.
#
# In the block's http_config, $TEST_NGINX_CERTGATE_TLS is the TLS server's
# listen and ssl_* lines (the supported setup: ssl_verify_client optional,
# certgate_expired_certificates pass).
#
# Where things are found (environment):
#   TEST_NGINX_CERTGATE_MODULE   the module .so (default: Debian's path)
#   TEST_NGINX_CERTGATE_CTL      certgatectl (default: certgatectl on PATH)
#   TEST_NGINX_BINARY            nginx (as Test::Nginx itself)
# Needs memcached, openssl and curl on the machine.

use strict;
use warnings;
use File::Temp qw(tempdir);
use File::Path qw(make_path);
use IO::Socket::INET;
use POSIX qw(WNOHANG setsid);
use Test::Nginx::Socket ();

our ($Dir, $Port, $MemcachedPort, $MemcachedPid, $Module, $Ctl, %Users);

sub import {
    my ($class, %o) = @_;
    return if $Dir;    # prepared once per suite
    $Module = $ENV{TEST_NGINX_CERTGATE_MODULE} || '/usr/lib/nginx/modules/ngx_http_certgate_module.so';
    $Ctl    = $ENV{TEST_NGINX_CERTGATE_CTL} || 'certgatectl';
    die "Test::Nginx::Certgate: no certgate module at $Module (set TEST_NGINX_CERTGATE_MODULE)\n"
        unless -f $Module;
    $Dir = tempdir('certgate-tn-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{TEST_NGINX_CERTGATE_KEEP});
    make_path("$Dir/maildir/$_") for qw(new cur tmp);
    $Port          = free_port();
    $MemcachedPort = free_port();
    start_memcached();
    make_pki();
    for my $u (@{$o{users} || []}) {
        my ($org, $user, $password, %uo) = @$u;
        add_user($org, $user, $password, %uo);
    }
    log_in_everyone();
    $ENV{TEST_NGINX_CERTGATE_PORT} = $Port;
    $ENV{TEST_NGINX_CERTGATE_DIR}  = $Dir;
    $ENV{TEST_NGINX_CERTGATE_TLS}  = tls_lines();
    Test::Nginx::Socket::add_block_preprocessor(\&preprocess);
}

sub free_port {
    for (1 .. 200) {
        my $p = 10000 + int(rand(22000));
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p, Proto => 'tcp')
            or next;
        close $s;
        return $p;
    }
    die "Test::Nginx::Certgate: no free port\n";
}

sub run {
    my @cmd = @_;
    my $q = join ' ', map { my $s = $_; $s =~ s/'/'\\''/g; "'$s'" } @cmd;
    my $out = `$q 2>&1`;
    return ($? >> 8, $out);
}

sub must {
    my ($rc, $out) = run(@_);
    die "Test::Nginx::Certgate: @_: $out" if $rc;
    return $out;
}

sub ctl { return run($Ctl, '--store', "sqlite:$Dir/certgate.db", @_) }

sub start_memcached {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        setsid();
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec 'memcached', '-l', '127.0.0.1', '-p', $MemcachedPort, '-U', '0', '-m', '16',
            ($> == 0 ? ('-u', 'root') : ());
        exit 127;
    }
    $MemcachedPid = $pid;
    wait_port($MemcachedPort, 'memcached');
}

sub wait_port {
    my ($port, $what) = @_;
    for (1 .. 200) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp');
        if ($s) { close $s; return }
        select(undef, undef, undef, 0.05);
    }
    die "Test::Nginx::Certgate: $what did not listen on port $port\n";
}

END {
    if ($MemcachedPid) {
        kill 'TERM', $MemcachedPid;
        waitpid($MemcachedPid, 0);
    }
}

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
}

# Our CA (certgatectl init --demo-ca), the secret, a server certificate for
# 127.0.0.1, and a foreign CA with one client certificate.
sub make_pki {
    my ($rc, $out) = ctl('init', '--demo-ca', '--ca-cert', "$Dir/ca.crt", '--ca-key', "$Dir/ca.key");
    die "Test::Nginx::Certgate: certgatectl init: $out" if $rc;
    must('openssl', 'rand', '-out', "$Dir/secret", 48);
    chmod 0600, "$Dir/secret";
    must(qw(openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost),
        '-keyout', "$Dir/server.key", '-out', "$Dir/server.csr");
    write_file("$Dir/server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    must(qw(openssl x509 -req -days 30 -set_serial 1), '-in', "$Dir/server.csr", '-CA', "$Dir/ca.crt",
        '-CAkey', "$Dir/ca.key", '-extfile', "$Dir/server.ext", '-out', "$Dir/server.crt");
    must(qw(openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30),
        '-subj', '/CN=Other CA', '-keyout', "$Dir/other-ca.key", '-out', "$Dir/other-ca.crt");
    client_cert('foreign', 'foreign1', 'other-ca');
}

sub client_cert {
    my ($name, $cn, $ca) = @_;
    must(qw(openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes),
        '-subj', "/O=Test Org/CN=$cn", '-keyout', "$Dir/$name.key", '-out', "$Dir/$name.csr");
    write_file("$Dir/$name.ext", "basicConstraints=critical,CA:FALSE\n"
        . "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n");
    must(qw(openssl x509 -req -days 30 -set_serial), int(rand(1 << 30)) + 2, '-in', "$Dir/$name.csr",
        '-CA', "$Dir/$ca.crt", '-CAkey', "$Dir/$ca.key", '-extfile', "$Dir/$name.ext",
        '-out', "$Dir/$name.crt");
}

sub add_user {
    my ($org, $user, $password, %o) = @_;
    unless ($Users{"org:$org"}++) {
        my ($rc, $out) = ctl('org', 'add', $org, '--name', "Org $org");
        die "Test::Nginx::Certgate: org add $org: $out" if $rc;
    }
    my $kind = $o{master} ? 'add-master' : 'add-general';
    my $mail = $o{mail} || "$user\@example.test";
    open my $p, '|-', $Ctl, '--store', "sqlite:$Dir/certgate.db", 'user', $kind, $org, $user,
        '--mail', $mail, '--password-stdin' or die "certgatectl: $!";
    print $p "$password\n";
    close $p or die "Test::Nginx::Certgate: user $kind $user failed\n";
    client_cert($user, $user, 'ca');
    my ($rc, $out) = ctl('cert', 'import', "$Dir/$user.crt", '--user', $user);
    die "Test::Nginx::Certgate: cert import $user: $out" if $rc;
    $Users{$user} = { password => $password, master => $o{master} };
}

sub certgate_lines {
    return <<"EOF";
    certgate_store sqlite:$Dir/certgate.db;
    certgate_memcached 127.0.0.1:$MemcachedPort;
    certgate_secret $Dir/secret;
    certgate_ca_certificate $Dir/ca.crt;
    certgate_ca_key $Dir/ca.key;
    certgate_mail maildir:$Dir/maildir;
    certgate_mail_from certgate\@example.test;
EOF
}

sub tls_lines {
    return "listen 127.0.0.1:$Port ssl;\n"
        . "        ssl_certificate $Dir/server.crt;\n"
        . "        ssl_certificate_key $Dir/server.key;\n"
        . "        ssl_client_certificate $Dir/ca.crt;\n"
        . "        ssl_verify_client optional;\n"
        . "        certgate_expired_certificates pass;\n";
}

# One real login per user, through the portal of a short-lived nginx on the
# same store, secret and CA: the sessions the blocks send are ones certgate
# made. The CSRF pair (seed cookie, token) comes from the same portal.
sub log_in_everyone {
    my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
    make_path("$Dir/boot/logs");
    my $user = $> == 0 ? "user root root;\n" : '';
    write_file("$Dir/boot/nginx.conf", <<"EOF");
load_module $Module;
${user}daemon off;
master_process off;
pid $Dir/boot/nginx.pid;
error_log $Dir/boot/logs/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $Dir/boot/body;
    proxy_temp_path $Dir/boot/proxy;
    fastcgi_temp_path $Dir/boot/fastcgi;
    uwsgi_temp_path $Dir/boot/uwsgi;
    scgi_temp_path $Dir/boot/scgi;
@{[certgate_lines()]}
    server {
        @{[tls_lines()]}
        location /certgate/ { certgate_portal; }
    }
}
EOF
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', "$Dir/boot/logs/nginx.log";
        open STDERR, '>&', \*STDOUT;
        exec $nginx, '-p', "$Dir/boot", '-c', "$Dir/boot/nginx.conf", '-e', "$Dir/boot/logs/error.log";
        exit 127;
    }
    my $ok = eval {
        wait_port($Port, 'nginx');
        my $jar = "$Dir/csrf.jar";
        write_file($jar, '');
        my $body = curl($jar, undef, '/certgate/');
        ($ENV{TEST_NGINX_CERTGATE_CSRF}) = $body =~ /"csrf_token":"([^"]+)"/
            or die "no csrf_token from the portal: $body";
        ($ENV{TEST_NGINX_CERTGATE_CSRF_SEED}) = read_jar($jar, '__Host-certgate_csrf')
            or die "no CSRF cookie from the portal";
        for my $u (grep { !/^org:/ } sort keys %Users) {
            my $login = curl($jar, $u, '/certgate/login', user_id => $u,
                password => $Users{$u}{password}, csrf_token => $ENV{TEST_NGINX_CERTGATE_CSRF});
            die "login of $u failed: $login" unless $login =~ /"ok":true/;
            my ($session) = read_jar($jar, '__Host-certgate_session')
                or die "no session cookie for $u";
            $Users{$u}{session} = $session;
        }
        1;
    };
    my $err = $@;
    kill 'QUIT', $pid;
    waitpid($pid, 0);
    die "Test::Nginx::Certgate: $err" . (Test::Nginx::Certgate::slurp("$Dir/boot/logs/error.log") // '')
        unless $ok;
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    local $/;
    return <$fh>;
}

sub curl {
    my ($jar, $cert, $path, %form) = @_;
    my @cmd = ('curl', '-s', '-S', '--max-time', 20, '--cacert', "$Dir/ca.crt", '-b', $jar, '-c', $jar,
        '-H', 'Accept: application/json');
    push @cmd, '--cert', "$Dir/$cert.crt", '--key', "$Dir/$cert.key" if $cert;
    push @cmd, map { ('--data-urlencode', "$_=$form{$_}") } sort keys %form;
    my ($rc, $out) = run(@cmd, "https://127.0.0.1:$Port$path");
    die "curl $path: $out" if $rc;
    return $out;
}

sub read_jar {
    my ($jar, $name) = @_;
    my $text = slurp($jar) // '';
    my @found = $text =~ /\t\Q$name\E\t([^\t\r\n]*)$/mg;
    return @found ? $found[-1] : ();
}

# The front locations, in Test::Nginx's own server.
sub front_lines {
    my $csrf = "__Host-certgate_csrf=$ENV{TEST_NGINX_CERTGATE_CSRF_SEED}";
    my $common = "proxy_ssl_trusted_certificate $Dir/ca.crt;\n"
        . "        proxy_set_header Host 127.0.0.1:$Port;\n";
    my $cookie = sub {
        my ($extra) = @_;
        return "proxy_set_header Cookie \"$csrf$extra\";\n";
    };
    my $out = "    location /anon/ {\n        proxy_pass https://127.0.0.1:$Port/;\n        $common"
        . "        " . $cookie->('') . "    }\n";
    $out .= "    location /foreign/ {\n        proxy_pass https://127.0.0.1:$Port/;\n        $common"
        . "        proxy_ssl_certificate $Dir/foreign.crt;\n"
        . "        proxy_ssl_certificate_key $Dir/foreign.key;\n"
        . "        " . $cookie->('') . "    }\n";
    for my $u (grep { !/^org:/ } sort keys %Users) {
        my $cert = "        proxy_ssl_certificate $Dir/$u.crt;\n"
            . "        proxy_ssl_certificate_key $Dir/$u.key;\n";
        $out .= "    location /as/$u/ {\n        proxy_pass https://127.0.0.1:$Port/;\n        $common$cert"
            . "        " . $cookie->('') . "    }\n";
        $out .= "    location /session/$u/ {\n        proxy_pass https://127.0.0.1:$Port/;\n        $common$cert"
            . "        " . $cookie->("; __Host-certgate_session=$Users{$u}{session}") . "    }\n";
    }
    return $out;
}

sub preprocess {
    my ($block) = @_;
    $block->set_value(main_config => "load_module $Module;\n" . ($block->main_config // ''));
    $block->set_value(http_config => certgate_lines() . ($block->http_config // ''));
    $block->set_value(config => front_lines() . ($block->config // ''));
    # Every block that starts nginx fails on an [alert], [crit] or [emerg].
    $block->set_value(no_error_log => "[alert]\n[crit]\n[emerg]")
        unless defined $block->no_error_log || defined $block->must_die;
}

1;
