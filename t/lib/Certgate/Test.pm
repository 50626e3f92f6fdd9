package Certgate::Test;

# The prove suites' harness: real nginx (Debian's /usr/sbin/nginx with the
# built module), real memcached and a real SMTP server (python3-aiosmtpd
# writing a Maildir), all on free loopback ports in a private directory.
#
#   my $t = Certgate::Test->new;            # temp dir, ports, demo CA, store
#   Certgate::Test->new(store => 'postgresql://...')   # that store instead of
#                                           # the SQLite file (init'ed here)
#   $t->start_memcached; $t->start_smtp;
#   $t->write_conf(<<'EOF'); $t->start_nginx;
#   http { ... %%HTTPS_PORT%% ... }
#   EOF
#   my $res = $t->get('/certgate/', cert => 'alice');
#
# Every suite fails if the error log holds [alert], [emerg] or a sanitizer
# report (checked when the object goes away).

use strict;
use utf8;
use warnings;

use Cwd qw(abs_path);
use Encode ();
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(sleep time);

# Suites write Japanese: print it as UTF-8.
binmode(Test::More->builder->$_, ':encoding(UTF-8)') for qw(output failure_output todo_output);

our $ROOT = abs_path(dirname(__FILE__) . '/../../..');

sub build_dir {
    return $ENV{CERTGATE_BUILD} || "$ROOT/build-test";
}

sub nginx_bin { $ENV{CERTGATE_NGINX} || '/usr/sbin/nginx' }

sub new {
    my ($class, %opts) = @_;
    # A suite stopped by a signal still stops what it started (DESTROY).
    # (PIPE: prove itself went away while the suite printed.)
    $SIG{$_} ||= sub { exit 1 } for qw(TERM INT HUP PIPE);
    my $dir = tempdir('certgate-t-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{CERTGATE_KEEP});
    my $self = bless {
        dir   => $dir,
        pids  => {},
        ports => {},
        owner => $$,
        %opts,
    }, $class;
    make_path("$dir/logs", "$dir/maildir/new", "$dir/maildir/cur", "$dir/maildir/tmp");
    $self->{ports}{$_} = free_port() for qw(http https memcached smtp);
    diag("test dir $dir") if $ENV{CERTGATE_KEEP};
    $self->init_pki unless $opts{no_pki};
    return $self;
}

sub dir  { $_[0]{dir} }
sub port { $_[0]{ports}{$_[1]} }

# Where this nginx keeps its nginx.conf, pid and logs: the suite's directory,
# or a node's own one (Certgate::Fleet runs several nginx on one directory's
# CA, secret and mails).
sub prefix { $_[0]{prefix} // $_[0]{dir} }

# The store's URI: new(store => URI), else the suite's SQLite file.
sub store_uri { $_[0]{store} || "sqlite:$_[0]{dir}/certgate.db" }

# The address nginx listens on and the suites connect to.
sub host { $_[0]{host} // '127.0.0.1' }

# A TCP port nobody listens on now, below the kernel's ephemeral range
# (32768 up): an ephemeral port picked by the kernel may be taken by any
# outgoing connection (a client of another suite) before our server binds it.
# Each call tries another port of a random sequence, so parallel suites
# rarely meet; a port some server holds fails to bind and is skipped.
sub free_port {
    for (1 .. 200) {
        my $p = 10000 + int(rand(22000));
        next if $Certgate::Test::used_port{$p}++;
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1', LocalPort => $p, Proto => 'tcp', ReuseAddr => 0
        ) or next;
        close $s;
        return $p;
    }
    die "no free port";
}

sub run {
    my (@cmd) = @_;
    my $out = `@{[join ' ', map { shell_quote($_) } @cmd]} 2>&1`;
    return ($? >> 8, $out);
}

sub shell_quote {
    my ($s) = @_;
    return $s if $s =~ m{^[\w./:=,+@%-]+\z};
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

sub certgatectl {
    my ($self, @args) = @_;
    return run(build_dir() . '/certgatectl', '--store', $self->store_uri, @args);
}

# Demo PKI for the suites: our CA (made by certgatectl init --demo-ca), a
# second, foreign CA, a server certificate, and the store.
sub init_pki {
    my ($self) = @_;
    my $d = $self->{dir};
    my ($rc, $out) = run(build_dir() . '/certgatectl', '--store', $self->store_uri,
        'init', '--demo-ca', '--ca-cert', "$d/ca.crt", '--ca-key', "$d/ca.key");
    die "certgatectl init failed: $out" if $rc != 0;
    openssl(qw(rand -out), "$d/secret", 48);
    chmod 0600, "$d/secret";

    # a server certificate signed by our CA, for 127.0.0.1/localhost
    openssl(qw(req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost),
        '-keyout', "$d/server.key", '-out', "$d/server.csr");
    write_file("$d/server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    openssl(qw(x509 -req -days 30 -set_serial 1), '-in', "$d/server.csr", '-CA', "$d/ca.crt",
        '-CAkey', "$d/ca.key", '-extfile', "$d/server.ext", '-out', "$d/server.crt");

    # a CA that is not ours
    openssl(qw(req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30),
        '-subj', '/CN=Other CA', '-keyout', "$d/other-ca.key", '-out', "$d/other-ca.crt");
}

sub openssl {
    my @args = @_;
    my ($rc, $out) = run('openssl', @args);
    die "openssl @args: $out" if $rc != 0;
    return $out;
}

# A client certificate for user $cn signed by our CA (or by ca => 'other'),
# written to <dir>/<name>.crt/.key; returns the name.
sub client_cert {
    my ($self, $cn, %o) = @_;
    my $d = $self->{dir};
    my $name = $o{name} || $cn;
    my $ca = ($o{ca} || '') eq 'other' ? 'other-ca' : 'ca';
    my $org = $o{org} || 'Demo Org';
    openssl(qw(req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes),
        '-subj', "/O=$org/CN=$cn", '-keyout', "$d/$name.key", '-out', "$d/$name.csr");
    write_file("$d/$name.ext",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            . "extendedKeyUsage=clientAuth\n");
    my @days = $o{days} ? ('-days', $o{days}) : ('-days', 30);
    openssl(qw(x509 -req -set_serial), int(rand(1 << 30)) + 2, @days, '-in', "$d/$name.csr",
        '-CA', "$d/$ca.crt", '-CAkey', "$d/$ca.key", '-extfile', "$d/$name.ext",
        '-out', "$d/$name.crt");
    return $name;
}

# A client certificate of our CA for $cn, valid until $until (epoch seconds),
# made with `openssl ca` (x509 -req cannot set an end time). Recorded in the
# store for $user when store_user is given. Returns the name.
sub client_cert_until {
    my ($self, $cn, $until, %o) = @_;
    my $d = $self->{dir};
    my $name = $o{name} || "$cn-until";
    my $ca = "$d/openssl-ca";
    unless (-d $ca) {
        mkdir $ca;
        write_file("$ca/index.txt", '');
        write_file("$ca/serial", sprintf("%016X\n", int(rand(2**31)) * 65536 + 7));
        write_file("$ca/ca.cnf", <<"EOF");
[ca]
default_ca = cg
[cg]
dir = $ca
database = $ca/index.txt
serial = $ca/serial
new_certs_dir = $ca
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
x509_extensions = client
[anything]
organizationName = optional
commonName = supplied
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EOF
    }
    my $org = $o{org} || 'Demo Org';
    openssl(qw(req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes),
        '-subj', "/O=$org/CN=$cn", '-keyout', "$d/$name.key", '-out', "$d/$name.csr");
    my @t = gmtime(time - 3600);
    my $start = sprintf('%04d%02d%02d%02d%02d%02dZ', $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0]);
    @t = gmtime($until);
    my $end = sprintf('%04d%02d%02d%02d%02d%02dZ', $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0]);
    openssl('ca', '-batch', '-config', "$ca/ca.cnf", '-cert', "$d/ca.crt", '-keyfile', "$d/ca.key",
        '-startdate', $start, '-enddate', $end, '-in', "$d/$name.csr", '-out', "$d/$name.crt",
        '-notext');
    if ($o{store_user}) {
        my ($rc, $out) = $self->certgatectl('cert', 'import', "$d/$name.crt", '--user', $o{store_user});
        die "cert import: $out" if $rc;
    }
    return $name;
}

sub write_file {
    my ($path, $content) = @_;
    open my $fh, '>', $path or die "$path: $!";
    binmode $fh;
    utf8::encode($content) if utf8::is_utf8($content);    # text (use utf8) goes out as UTF-8
    print $fh $content;
    close $fh;
}

sub read_file {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    binmode $fh;
    local $/;
    my $c = <$fh>;
    close $fh;
    return $c;
}

# --- services -----------------------------------------------------------------

sub spawn {
    my ($self, $name, @cmd) = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        # Its own process group, so a stop can take nginx's workers along.
        setpgrp(0, 0);
        open STDOUT, '>>', $self->prefix . "/logs/$name.log";
        open STDERR, '>&', \*STDOUT;
        exec @cmd or die "exec @cmd: $!";
    }
    $self->{pids}{$name} = $pid;
    return $pid;
}

sub wait_port {
    my ($self, $port, $what, $host) = @_;
    my $deadline = time + 10;
    while (time < $deadline) {
        my $s = IO::Socket::INET->new(PeerAddr => $host || '127.0.0.1', PeerPort => $port, Proto => 'tcp');
        if ($s) { close $s; return 1; }
        sleep 0.05;
    }
    die "$what did not listen on port $port";
}

sub stop {
    my ($self, $name, $sig) = @_;
    my $pid = delete $self->{pids}{$name} or return;
    kill $sig || 'TERM', $pid;
    my $deadline = time + 10;
    while (time < $deadline) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    # The whole group: a killed nginx master would leave its workers running.
    kill 'KILL', -$pid;
    waitpid($pid, 0);
}

# The suite's memcached servers. Certgate::Test->new(memcached_servers => 2)
# (or start_memcached(n => 2) before write_conf) runs that many, on the ports
# memcached, memcached2, ...; certgate_common lists them all. only => $i
# starts or stops just the $i-th (1 = the first), on the same port.
sub memcached_count { $_[0]{memcached_servers} || 1 }

sub memcached_name { my ($self, $i) = @_; return !$i || $i == 1 ? 'memcached' : "memcached$i" }

sub memcached_port {
    my ($self, $i) = @_;
    my $name = $self->memcached_name($i);
    return $self->{ports}{$name} //= free_port();
}

sub start_memcached {
    my ($self, %o) = @_;
    $self->{memcached_servers} = $o{n} if $o{n};
    my @user = $> == 0 ? ('-u', 'root') : ();
    for my $i (defined $o{only} ? ($o{only}) : (1 .. $self->memcached_count)) {
        my $port = $self->memcached_port($i);
        $self->spawn($self->memcached_name($i), 'memcached', '-l', '127.0.0.1', '-p', $port,
            '-U', '0', '-m', '16', @user);
        $self->wait_port($port, $self->memcached_name($i));
    }
}

sub stop_memcached {
    my ($self, %o) = @_;
    $self->stop($self->memcached_name($_))
        for defined $o{only} ? ($o{only}) : (1 .. $self->memcached_count);
}

# The keys the $i-th memcached holds now (its LRU crawler's metadump).
sub memcached_keys {
    my ($self, $i) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->memcached_port($i),
        Proto => 'tcp', Timeout => 5) or die "memcached $i: $!";
    print $s "lru_crawler metadump all\r\n";
    my @keys;
    while (my $line = <$s>) {
        last if $line =~ /^(END|ERROR|BUSY)/;
        push @keys, $1 if $line =~ /^key=(\S+)/;
    }
    close $s;
    require URI::Escape;
    return map { URI::Escape::uri_unescape($_) } @keys;
}

sub start_smtp {
    my ($self) = @_;
    $self->spawn('smtp', '/usr/bin/python3', '-m', 'aiosmtpd', '-n', '-l',
        '127.0.0.1:' . $self->port('smtp'), '-c', 'aiosmtpd.handlers.Mailbox',
        "$self->{dir}/maildir");
    $self->wait_port($self->port('smtp'), 'the SMTP server');
}

sub stop_smtp { $_[0]->stop('smtp') }

# The mails in the Maildir, oldest first, as raw text.
sub mails {
    my ($self) = @_;
    # Maildir names are <seconds>.M<microseconds>P<pid>Q<n>.<host>: numbers,
    # not text ("M80885" is earlier than "M670856"), and a second holds many.
    my $when = sub {
        my ($name) = $_[0] =~ m{([^/]+)\z};
        return $name =~ /^(\d+)\.M(\d+)/ ? $1 + $2 / 1e6 : (stat $_[0])[9];
    };
    my @files = sort { $when->($a) <=> $when->($b) || $a cmp $b }
        glob("$self->{dir}/maildir/new/*"), glob("$self->{dir}/maildir/cur/*");
    return map { read_file($_) } @files;
}

# The mails, decoded: [{ to, subject, body, raw }], oldest first.
sub decoded_mails {
    my ($self) = @_;
    require MIME::Base64;
    require Encode;
    my @out;
    for my $raw ($self->mails) {
        my ($head, $body) = split /\r?\n\r?\n/, $raw, 2;
        $head =~ s/\r?\n[ \t]+/ /g;
        my %h;
        for (split /\r?\n/, $head) {
            my ($k, $v) = split /:\s*/, $_, 2;
            $h{lc $k} = $v if defined $v;
        }
        my $subject = Encode::decode('MIME-Header', $h{subject} // '');
        $body //= '';
        if (($h{'content-transfer-encoding'} // '') =~ /base64/i) {
            $body = MIME::Base64::decode_base64($body);
        }
        $body = Encode::decode('UTF-8', $body);
        push @out, { to => $h{to}, subject => $subject, body => $body, raw => $raw };
    }
    return @out;
}

# Waits until at least $n mails are in the Maildir; returns them decoded.
sub wait_mails {
    my ($self, $n, $timeout) = @_;
    my $deadline = time + ($timeout || 10);
    while (time < $deadline) {
        my @m = $self->decoded_mails;
        return @m if @m >= $n;
        sleep 0.1;
    }
    return $self->decoded_mails;
}

# Waits until at least $n mails to an address matching $re are in the
# Maildir (mails queued to the outbox arrive with the next sweep); returns
# those mails, decoded.
sub wait_mails_to {
    my ($self, $re, $n, $timeout) = @_;
    my $deadline = time + ($timeout || 10);
    my @m;
    while (1) {
        @m = grep { ($_->{to} // '') =~ $re } $self->decoded_mails;
        return @m if @m >= $n || time >= $deadline;
        sleep 0.1;
    }
}

# --- nginx ----------------------------------------------------------------------

# The http{} block's common lines: the module's directives pointing at this
# suite's CA, store, memcached and mail relay.
sub certgate_common {
    my ($self) = @_;
    my $d = $self->{dir};
    return <<"EOF";
    certgate_store @{[$self->store_uri]};
    certgate_memcached @{[join ' ', map { '127.0.0.1:' . $self->memcached_port($_) } 1 .. $self->memcached_count]};
    certgate_secret $d/secret;
    certgate_ca_certificate $d/ca.crt;
    certgate_ca_key $d/ca.key;
    certgate_mail smtp://127.0.0.1:@{[$self->port('smtp')]};
    certgate_mail_from certgate\@example.test;
EOF
}

# Writes nginx.conf. The text is the http{} contents; %%NAME%% placeholders:
# HTTP_PORT, HTTPS_PORT, DIR, CERTGATE (the common lines), TLS (listen ssl +
# server certificate + optional client certificates of our CA).
sub write_conf {
    my ($self, $http, %o) = @_;
    my $d = $self->{dir};
    my $p = $self->prefix;
    my $workers = $o{workers} || 1;
    my $module = build_dir() . '/ngx_http_certgate_module.so';
    my $user = $> == 0 ? "user root root;\n" : '';
    my $tls = <<"EOF";
        listen @{[$self->host]}:@{[$self->port('https')]} ssl;
        ssl_certificate $d/@{[$self->{server_cert} || 'server']}.crt;
        ssl_certificate_key $d/@{[$self->{server_cert} || 'server']}.key;
        ssl_client_certificate $d/ca.crt;
        ssl_verify_client optional_no_ca;
EOF
    my %vars = (
        HTTP_PORT  => $self->port('http'),
        HTTPS_PORT => $self->port('https'),
        DIR        => $d,
        # Suites send many failures from 127.0.0.1; the per-source throttle
        # (issue 13) is off unless a suite sets it (t/throttle.t does).
        CERTGATE   => $self->certgate_common
            . ($http =~ /certgate_source_limit/ ? '' : "    certgate_source_limit off;\n"),
        TLS        => $tls,
    );
    $http =~ s/%%(\w+)%%/exists $vars{$1} ? $vars{$1} : die "unknown placeholder $1"/ge;
    my $conf = <<"EOF";
load_module $module;
${user}worker_processes $workers;
daemon off;
master_process @{[$o{master_process} || 'on']};
pid $p/nginx.pid;
error_log $p/logs/error.log @{[$o{log_level} || $ENV{CERTGATE_LOG_LEVEL} || 'debug']};
@{[$o{main} // '']}
events { worker_connections @{[$o{worker_connections} || 1024]}; }
http {
    access_log $p/logs/access.log;
    client_body_temp_path $p/client_body;
    proxy_temp_path $p/proxy;
    fastcgi_temp_path $p/fastcgi;
    uwsgi_temp_path $p/uwsgi;
    scgi_temp_path $p/scgi;
$http
}
EOF
    write_file("$p/nginx.conf", $conf);
    return "$p/nginx.conf";
}

sub sanitizer_env {
    my ($self) = @_;
    return () unless $ENV{CERTGATE_SANITIZE};
    my $asan = `gcc -print-file-name=libasan.so`;
    chomp $asan;
    my $ubsan = `gcc -print-file-name=libubsan.so`;
    chomp $ubsan;
    return (
        LD_PRELOAD    => "$asan $ubsan",
        ASAN_OPTIONS  => "detect_leaks=0:log_path=@{[$self->prefix]}/logs/asan",
        UBSAN_OPTIONS => "print_stacktrace=1:log_path=@{[$self->prefix]}/logs/ubsan",
    );
}

# nginx -t on a file; returns (exit code, output).
sub nginx_t {
    my ($self, $conf) = @_;
    local %ENV = (%ENV, $self->sanitizer_env);
    my $p = $self->prefix;
    return run(nginx_bin(), '-t', '-p', $p, '-c', $conf || "$p/nginx.conf", '-e', "$p/logs/error-t.log");
}

sub start_nginx {
    my ($self) = @_;
    local %ENV = (%ENV, $self->sanitizer_env);
    my $d = $self->prefix;
    unlink "$d/nginx.pid";    # a node killed with -9 leaves its pid file
    $self->spawn('nginx', nginx_bin(), '-p', $d, '-c', "$d/nginx.conf", '-e', "$d/logs/error.log");
    my $deadline = time + 10;
    while (time < $deadline) {
        last if -s "$d/nginx.pid";
        if (waitpid($self->{pids}{nginx}, WNOHANG) == $self->{pids}{nginx}) {
            delete $self->{pids}{nginx};
            die "nginx did not start:\n" . (read_file("$d/logs/nginx.log") // '')
                . (read_file("$d/logs/error.log") // '');
        }
        sleep 0.05;
    }
    my @ports = grep { $self->port($_) } qw(http https);
    my $conf = read_file("$d/nginx.conf");
    for my $p (@ports) {
        my $port = $self->port($p);
        $self->wait_port($port, 'nginx', $self->host) if $conf =~ /:$port\b/;
    }
}

sub stop_nginx { $_[0]->stop('nginx', 'QUIT') }

# nginx -s reload, as an operator does after editing nginx.conf: HUP to the
# master; returns once the new workers have started (or dies with the log).
sub reload_nginx {
    my ($self, %o) = @_;
    my $workers = $o{workers} || 1;
    my $count = sub { scalar(() = (read_file($self->prefix . '/logs/error.log') // '') =~ /start worker process/g) };
    my $before = $count->();
    kill 'HUP', $self->{pids}{nginx} or die "no nginx to reload";
    my $deadline = time + 10;
    while (time < $deadline) {
        if ($count->() >= $before + $workers) {
            sleep 0.3;    # the old workers finish their keep-alive connections
            return 1;
        }
        sleep 0.05;
    }
    die "nginx did not reload:\n" . (read_file($self->prefix . '/logs/error.log') // '');
}

sub error_log {
    my ($self) = @_;
    return join '', map { read_file($_) // '' } glob($self->prefix . '/logs/error*.log');
}

# Lines of the logs that fail every suite.
sub bad_log_lines {
    my ($self) = @_;
    my @bad = grep { /\[(alert|emerg|crit)\]/ } split /\n/, $self->error_log;
    my $p = $self->prefix;
    for my $f (glob("$p/logs/asan*"), glob("$p/logs/ubsan*")) {
        push @bad, "sanitizer report $f:\n" . (read_file($f) // '');
    }
    for my $f (glob("$p/logs/nginx.log")) {
        my $c = read_file($f) // '';
        push @bad, grep { /AddressSanitizer|runtime error:|LeakSanitizer/ } split /\n/, $c;
    }
    return @bad;
}

# Call at the end of a suite: stops everything and checks the logs.
sub done {
    my ($self, %o) = @_;
    $self->stop_nginx;
    $self->stop($_) for keys %{$self->{pids}};
    my @bad = $self->bad_log_lines;
    if ($o{allow}) {
        @bad = grep { $_ !~ $o{allow} } @bad;
    }
    ok(!@bad, 'no [alert], [emerg], [crit] or sanitizer report in the logs')
        or diag(join "\n", @bad);
    $self->{done} = 1;
}

sub DESTROY {
    my ($self) = @_;
    # A forked child (a background request) must not stop the services.
    return if ($self->{owner} || 0) != $$;
    local $?;
    for my $name (keys %{$self->{pids} || {}}) {
        kill 'KILL', -$self->{pids}{$name};    # the process group: nginx's workers too
        waitpid($self->{pids}{$name}, 0);
    }
}

# --- HTTP ---------------------------------------------------------------------------

# An HTTP(S) request through curl. Options: method, body (form fields as a
# hashref, or a string), cert (client certificate name), json (Accept:
# application/json), headers (arrayref), scheme (https by default), cookies
# (a cookie-jar file), timeout.
# Returns a hashref { status, headers (lower-case keys), body, time }.
sub request {
    my ($self, $path, %o) = @_;
    my $scheme = $o{scheme} || 'https';
    my $port = $scheme eq 'https' ? $self->port('https') : $self->port('http');
    my $d = $self->{dir};
    my @cmd = ('curl', '-s', '-S', '-i', '--max-time', $o{timeout} || $self->{timeout} || 20, '--cacert', "$d/ca.crt");
    # A name for several nodes (Certgate::Fleet): the browser's cookies go
    # to whichever node the name leads to.
    my $url = "$scheme://" . ($self->{url_host} || $self->host) . ":$port$path";
    push @cmd, '--resolve', "$self->{url_host}:$port:" . $self->host if $self->{url_host};
    push @cmd, '-X', $o{method} if $o{method};
    if ($o{cert}) {
        push @cmd, '--cert', "$d/$o{cert}.crt", '--key', "$d/$o{cert}.key";
    }
    push @cmd, '-H', 'Accept: application/json' if $o{json};
    push @cmd, map { ('-H', $_) } @{$o{headers} || []};
    if ($o{cookies}) {
        push @cmd, '-b', $o{cookies}, '-c', $o{cookies};
    }
    if (defined $o{body}) {
        if (ref $o{body} eq 'HASH') {
            push @cmd, map { ('--data-urlencode', "$_=$o{body}{$_}") } sort keys %{$o{body}};
        } else {
            push @cmd, '--data-binary', $o{body};
        }
    }
    push @cmd, '-w', '\n%{time_total}', $url;
    my $start = time;
    my ($rc, $out) = run(@cmd);
    my $res = { status => 0, headers => {}, body => '', curl_rc => $rc, raw => $out };
    return $res if $rc != 0;
    $out =~ s/\n([\d.]+)\z// and $res->{time} = $1;
    my ($head, $body) = split /\r\n\r\n/, $out, 2;
    my @lines = split /\r\n/, $head;
    my $status_line = shift @lines;
    ($res->{status}) = $status_line =~ m{^HTTP/\S+ (\d+)};
    for (@lines) {
        my ($k, $v) = split /:\s*/, $_, 2;
        push @{$res->{header_list}{lc $k}}, $v;
        $res->{headers}{lc $k} = $v;
    }
    $res->{raw_body} = $body // '';
    # Text answers are decoded, so suites (with `use utf8`) match characters.
    $res->{body} = ($res->{headers}{'content-type'} // '') =~ m{^(text/|application/json)}
        ? Encode::decode('UTF-8', $res->{raw_body}) : $res->{raw_body};
    return $res;
}

sub get { my ($self, $path, %o) = @_; return $self->request($path, %o) }

# A new, empty cookie jar (a browser).
sub jar {
    my ($self) = @_;
    my $n = ++$Certgate::Test::jars;    # one count for all nodes of a fleet
    my $path = "$self->{dir}/jar-$n.txt";
    write_file($path, '');
    return $path;
}

sub json_of {
    my ($res) = @_;
    require JSON::PP;
    return eval { JSON::PP->new->decode($res->{body}) } || {};
}

# GETs a portal screen as JSON with the jar, then POSTs the form with its
# CSRF token. Returns the POST's response; ->{json} is its decoded body.
sub submit {
    my ($self, $path, $fields, %o) = @_;
    my $jar = $o{jar} || $self->jar;
    # The CSRF token belongs to the browser (its seed cookie), not the screen.
    my $get = $self->get($o{token_from} || '/certgate/', json => 1, cookies => $jar, cert => $o{cert});
    my $token = json_of($get)->{csrf_token} // '';
    my $res = $self->request($path, method => 'POST', json => !$o{html}, cookies => $jar,
        cert => $o{cert}, body => { csrf_token => $token, %$fields });
    $res->{json} = json_of($res);
    return $res;
}

# The code of the newest auth-code mail to $user, waiting for it.
sub code_for {
    my ($self, $user, $after) = @_;
    $after //= 0;
    for (1 .. 300) {
        my @m = grep { ($_->{to} // '') =~ /^\Q$user\E\@/ && $_->{subject} =~ /認証コード|authentication code/i }
            $self->decoded_mails;
        if (@m > $after) {
            my ($code) = $m[-1]{body} =~ /(?:認証コード：|Authentication code: )(\d{6,10})/;
            return $code;
        }
        sleep 0.1;
    }
    return undef;
}

# Walks ④ → ⑤ → ⑥ for $user and downloads the .p12. Returns a hashref:
# { ok, serial, file_name, p12 (path), name (cert name for cert =>), error, json }.
sub issue_certificate {
    my ($self, $user, $password, %o) = @_;
    my $jar = $o{jar} || $self->jar;
    my $mails_before = () = grep { ($_->{to} // '') =~ /^\Q$user\E\@/ && $_->{subject} =~ /認証コード/ }
        $self->decoded_mails;
    my $r = $self->submit('/certgate/issue', { user_id => $user, password => $password }, jar => $jar);
    return { error => $r->{json}{error} // "status $r->{status}", json => $r->{json} } unless $r->{json}{ok};
    my $code = $self->code_for($user, $mails_before)
        // return { error => 'no code mail arrived', json => $r->{json} };
    $r = $self->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    return { error => $r->{json}{error}, json => $r->{json} } unless $r->{json}{ok};
    $r = $self->submit('/certgate/issue/confirm', {}, jar => $jar);
    return { error => $r->{json}{error}, json => $r->{json} } unless $r->{json}{ok};
    my $download = $r->{json}{download};
    my $d = $self->{dir};
    my $name = $o{name} || "$user-issued";
    my $res = $self->request($download, cookies => $jar);
    return { error => "download status $res->{status}", json => $r->{json} } unless $res->{status} == 200;
    my ($file) = ($res->{headers}{'content-disposition'} // '') =~ /filename="([^"]+)"/;
    $self->save_p12($res->{raw_body}, $name, $password);
    my $serial = `openssl x509 -noout -serial -in $d/$name.crt`;
    $serial =~ s/^serial=//;
    chomp $serial;
    return { ok => 1, serial => $serial, file_name => $file, p12 => "$d/$name.p12", name => $name,
             jar => $jar, download => $download, json => $r->{json} };
}

# Writes a downloaded .p12 to <dir>/$name.p12 with PEM copies for curl's
# --cert/--key (<dir>/$name.crt, .key); dies when it does not open.
sub save_p12 {
    my ($self, $p12, $name, $password) = @_;
    my $d = $self->{dir};
    write_file("$d/$name.p12", $p12);
    my ($rc, $out) = run('openssl', 'pkcs12', '-in', "$d/$name.p12", '-passin', "pass:$password",
        '-nodes', '-clcerts', '-out', "$d/$name.pem");
    die "cannot open the .p12: $out" if $rc;
    run('openssl', 'x509', '-in', "$d/$name.pem", '-out', "$d/$name.crt");
    run('openssl', 'pkey', '-in', "$d/$name.pem", '-out', "$d/$name.key");
}

# ログイン with a certificate; returns the response (->{json}).
sub login {
    my ($self, $user, $password, %o) = @_;
    return $self->submit('/certgate/login', { user_id => $user, password => $password,
        ($o{return} ? (return => $o{return}) : ()) }, jar => $o{jar} || $self->jar, cert => $o{cert});
}

# A user ready to authenticate: added with --password-stdin.
sub add_user {
    my ($self, $org, $user, $password, %o) = @_;
    my $kind = $o{master} ? 'add-master' : 'add-general';
    my $mail = $o{mail} || "$user\@example.test";
    my $cmd = "printf '%s\\n' " . shell_quote($password) . ' | ' . build_dir()
        . '/certgatectl --store ' . shell_quote($self->store_uri) . " user $kind $org $user --mail $mail"
        . ' --password-stdin';
    my $out = `$cmd 2>&1`;
    die "add user $user: $out" if $?;
    return $user;
}

# Changes the store behind certgate's back (ages a row, say), as a test must.
# The sqlite3 shell waits for the lock like certgate does: nginx may be
# writing (an event, the outbox) at that moment. SQLite stores only.
sub sql {
    my ($self, $statement) = @_;
    my ($rc, $out) = run('sqlite3', '-cmd', '.timeout 10000', "$self->{dir}/certgate.db", $statement);
    die "sqlite3 $statement: $out" if $rc;
    return $out;
}

sub add_org {
    my ($self, $org) = @_;
    my ($rc, $out) = $self->certgatectl('org', 'add', $org, '--name', "Org $org");
    die "org add: $out" if $rc;
}

# The audit trail as a list of {kind, subject, actor, detail}.
sub audit {
    my ($self, @args) = @_;
    my ($rc, $out) = $self->certgatectl('--json', 'audit', '--limit', '100000', @args);
    die "audit: $out" if $rc;
    require JSON::PP;
    my $data = JSON::PP::decode_json($out);
    return ref $data eq 'ARRAY' ? @$data : @{$data->{events} || []};
}

1;
