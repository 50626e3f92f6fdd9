package Certgate::Fleet;

# A fleet for the suites (issue 15): three nginx nodes, as behind a load
# balancer, sharing one store (a PostgreSQL the suite starts in its own
# directory through t/lib/pgtmp), two memcached servers listed alike on every
# node, one CA, one secret and the SMTP sink of Certgate::Test.
#
#   my $f = Certgate::Fleet->new;          # PostgreSQL, 2 memcached, SMTP
#   $f->start;                             # the three nodes' nginx
#   $f->node(2)->login($user, $pw, cert => $name, jar => $jar);
#   $f->kill_node(1); $f->pause_memcached(2); $f->stop_store; ...
#
# Node i listens on 127.0.0.(i+1) on one port; the suites ask for it by the
# name certgate.test (curl --resolve), so one cookie jar is one browser that
# the balancer sends to whichever node. The fleet object itself is a
# Certgate::Test (certgatectl, audit, mails, sql on the shared store); each
# node is one too, for request, submit, login, issue_certificate.
#
# new(store => 'sqlite') runs the fleet on one shared SQLite file instead (a
# fallback while debugging, not what the suites test); so does
# CERTGATE_FLEET_STORE=sqlite. CERTGATE_PG_PORTS=55420-55429 makes the
# PostgreSQL port one of that range (else any free port).

use strict;
use utf8;
use warnings;

use parent -norequire, 'Certgate::Test';
use Certgate::Test;
use IO::Socket::INET;
use IO::Socket::SSL;
use List::Util ();
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

our $NAME = 'certgate.test';

sub new {
    my ($class, %o) = @_;
    my $nodes = delete $o{nodes} || 3;
    my $kind = delete $o{store} || $ENV{CERTGATE_FLEET_STORE} || 'postgresql';
    my $self = Certgate::Test::new($class, no_pki => 1, memcached_servers => 2, %o);
    my $d = $self->dir;
    $self->{store_kind} = $kind;
    if ($kind eq 'postgresql') {
        chmod 0711, $d if $> == 0;    # pgtmp runs PostgreSQL as postgres, under $d
        my $port = pg_port();
        my ($rc, $uri) = Certgate::Test::run("$Certgate::Test::ROOT/t/lib/pgtmp", 'start', "$d/pg", $port);
        die "pgtmp start: $uri" if $rc;
        chomp $uri;
        $self->{store} = $uri;
        $self->{pg} = "$d/pg";
    } elsif ($kind ne 'sqlite') {
        die "Certgate::Fleet: store must be postgresql or sqlite, not $kind";
    }
    # From here on a failure stops the PostgreSQL it started (DESTROY is not
    # called for an object that new() did not return).
    eval { $self->init_fleet($nodes); 1 } or do {
        my $err = $@;
        $self->destroy_store;
        die $err;
    };
    diag("fleet store: " . $self->store_uri) if $ENV{CERTGATE_KEEP};
    return $self;
}

sub init_fleet {
    my ($self, $nodes) = @_;
    my $d = $self->dir;
    $self->init_pki;
    # The server certificate of every node: the fleet's name and addresses.
    Certgate::Test::openssl(qw(req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes),
        '-subj', "/CN=$NAME", '-keyout', "$d/fleet-server.key", '-out', "$d/fleet-server.csr");
    Certgate::Test::write_file("$d/fleet-server.ext", "subjectAltName=DNS:$NAME"
        . join('', map { ",IP:127.0.0.$_" } 2 .. $nodes + 1) . "\n");
    Certgate::Test::openssl(qw(x509 -req -days 30 -set_serial 3), '-in', "$d/fleet-server.csr",
        '-CA', "$d/ca.crt", '-CAkey', "$d/ca.key", '-extfile', "$d/fleet-server.ext",
        '-out', "$d/fleet-server.crt");
    $self->start_memcached;
    $self->start_smtp;
    for my $i (1 .. $nodes) {
        my $prefix = "$d/node$i";
        mkdir $prefix;
        mkdir "$prefix/logs";
        push @{$self->{nodes}}, bless {
            dir               => $d,
            prefix            => $prefix,
            host              => '127.0.0.' . ($i + 1),
            url_host          => $NAME,
            server_cert       => 'fleet-server',
            ports             => $self->{ports},    # the same https port on every address
            store             => $self->{store},
            memcached_servers => $self->{memcached_servers},
            pids              => {},
            owner             => $$,
            index             => $i,
            timeout           => 60,    # curl's --max-time: a loaded machine
        }, 'Certgate::Fleet::Node';
    }
}

# A port for PostgreSQL: free now, from CERTGATE_PG_PORTS (a-b) when set.
sub pg_port {
    my ($lo, $hi) = ($ENV{CERTGATE_PG_PORTS} // '') =~ /^(\d+)-(\d+)$/;
    return Certgate::Test::free_port() unless $lo;
    for my $p (List::Util::shuffle($lo .. $hi)) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p, Proto => 'tcp') or next;
        close $s;
        return $p;
    }
    die "no free port in CERTGATE_PG_PORTS=$ENV{CERTGATE_PG_PORTS}";
}

sub nodes { @{$_[0]{nodes}} }
sub node  { my ($self, $i) = @_; return $self->{nodes}[$i - 1] // die "no node $i" }
sub is_postgresql { $_[0]{store_kind} eq 'postgresql' }

# The nginx.conf of every node: the common lines, certgate_sync_interval 1s,
# the portal at /certgate/ and a protected /app/ serving <dir>/app/x.
# extra => lines for the http{} block.
sub fleet_conf {
    my ($self, %o) = @_;
    my $extra = $o{extra} // '';
    return <<"EOF";
    %%CERTGATE%%
    certgate_sync_interval 1s;
    # EC keys: three nodes on two shared cores would spend ⑥ on RSA primes.
    certgate_key_type ec:P-256;
$extra
    keepalive_requests 100000;
    keepalive_timeout 120s;
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            root %%DIR%%;
        }
    }
EOF
}

# Writes every node's nginx.conf and starts them. Options: extra (http{}
# lines), workers (per node, 2 by default).
sub start {
    my ($self, %o) = @_;
    mkdir $self->dir . '/app';
    Certgate::Test::write_file($self->dir . '/app/x', "business app\n");
    $self->{workers} = $o{workers} || 2;
    for my $n ($self->nodes) {
        $n->write_conf($self->fleet_conf(%o), workers => $self->{workers});
        $n->start_nginx;
    }
}

sub start_node { my ($self, $i) = @_; $self->node($i)->start_nginx }

# The pids of node $i's nginx: its master and workers (one process group).
sub node_pids {
    my ($self, $i) = @_;
    my $n = $self->node($i);
    my $pgid = $n->{pids}{nginx} // $n->{killed} or return ();
    return grep { /^\d+$/ } split /\s+/, `pgrep -g $pgid`;
}

# kill -9 every process of node $i (master and workers), as a machine that
# dies; returns once they are gone.
sub kill_node {
    my ($self, $i) = @_;
    my $n = $self->node($i);
    my $pgid = delete $n->{pids}{nginx} or die "node $i is not running";
    $n->{killed} = $pgid;
    kill 'KILL', -$pgid;
    waitpid($pgid, 0);
    for (1 .. 100) {
        last unless `pgrep -g $pgid`;
        sleep 0.05;
    }
}

# memcached $i (1 or 2): kill -9, stop, start again on its port, SIGSTOP and
# SIGCONT.
sub kill_memcached  { my ($self, $i) = @_; $self->stop($self->memcached_name($i), 'KILL') }
sub start_memcached_again { my ($self, $i) = @_; $self->start_memcached(only => $i) }
sub pause_memcached  { my ($self, $i) = @_; kill 'STOP', $self->{pids}{$self->memcached_name($i)} }
sub resume_memcached { my ($self, $i) = @_; kill 'CONT', $self->{pids}{$self->memcached_name($i)} }

# The store's PostgreSQL: stopped (fast shutdown: the nodes' connections
# break) and started again on the same port and data.
sub stop_store {
    my ($self) = @_;
    die 'the fleet runs on SQLite' unless $self->{pg};
    my ($rc, $out) = Certgate::Test::run("$Certgate::Test::ROOT/t/lib/pgtmp", 'stop', $self->{pg});
    die "pgtmp stop: $out" if $rc;
}

sub start_store {
    my ($self) = @_;
    my ($rc, $out) = Certgate::Test::run("$Certgate::Test::ROOT/t/lib/pgtmp", 'restart', $self->{pg});
    die "pgtmp restart: $out" if $rc;
}

# A statement on the store, as Certgate::Test::sql does for SQLite: the rows,
# one a line, columns joined by '|'.
sub sql {
    my ($self, $statement) = @_;
    return $self->SUPER::sql($statement) unless $self->{pg};
    my ($rc, $out) = Certgate::Test::run('psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
        $self->store_uri, '-c', $statement);
    die "psql $statement: $out" if $rc;
    return $out;
}

# Which memcached (1 or 2) holds a key matching $re; 0 when none or both.
sub memcached_holding {
    my ($self, $re) = @_;
    my @on = grep { my $i = $_; grep { $_ =~ $re } $self->memcached_keys($i) } 1, 2;
    return @on == 1 ? $on[0] : 0;
}

# A new user ($prefix01, $prefix02, ...) with one wrong password judged whose
# failure counter is on memcached $want (ketama places it by the key, which
# names the streak: a login starts a new one, so setup => sub { login } runs
# for the user before).
sub user_counting_on {
    my ($self, $want, $prefix, $password, $wrong, %o) = @_;
    for my $n (1 .. 40) {
        my $u = sprintf '%s%02d', $prefix, $n;
        $self->add_user('ORG001', $u, $password);
        $o{setup}->($u) if $o{setup};
        my $r = $self->node(1)->submit('/certgate/issue', { user_id => $u, password => $wrong });
        die "$u: $r->{status} " . ($r->{json}{error} // '') unless ($r->{json}{error} // '') eq 'bad_credentials';
        return $u if $self->memcached_holding(qr/^cg:fail:\Q$u\E:/) == $want;
    }
    die "no user counting on memcached $want";
}

# The cookies of a jar as a Cookie: header value.
sub cookie_header {
    my ($jar) = @_;
    my @c;
    for (split /\n/, Certgate::Test::read_file($jar) // '') {
        s/^#HttpOnly_//;
        next if /^#/ || !/\t/;
        my @f = split /\t/;
        push @c, "$f[5]=$f[6]" if @f >= 7;
    }
    return join '; ', @c;
}

# A keep-alive TLS connection to node $i (certificate $o{cert} when given);
# returns a function (method, path, %o: body, cookie) -> [status, body] that
# reconnects when nginx closed the connection.
sub connection {
    my ($self, $i, %o) = @_;
    my $d = $self->dir;
    my $n = $self->node($i);
    my $sock;
    my $open = sub {
        $sock = IO::Socket::SSL->new(
            PeerAddr => $n->host, PeerPort => $n->port('https'), Timeout => $o{timeout} || 10,
            SSL_ca_file => "$d/ca.crt", SSL_verifycn_name => $NAME, SSL_hostname => $NAME,
            ($o{cert} ? (SSL_cert_file => "$d/$o{cert}.crt", SSL_key_file => "$d/$o{cert}.key") : ()),
        );
        return $sock;
    };
    $open->() or die "connect to node $i: $SSL_ERROR";
    return sub {
        my ($method, $path, %r) = @_;
        local $SIG{PIPE} = 'IGNORE';
        my $body = $r{body} // '';
        my $req = "$method $path HTTP/1.1\r\nHost: $NAME\r\nAccept: application/json\r\n"
            . ($r{cookie} ? "Cookie: $r{cookie}\r\n" : '')
            . ($method eq 'POST' ? "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
                . length($body) . "\r\n" : '')
            . "\r\n$body";
        for my $try (1, 2) {
            if (!$sock && ($r{no_reconnect} || !$open->())) {
                return [0, 'connect failed'];
            }
            my ($head, $len) = ('', 0);
            if (print $sock $req) {
                while (defined(my $line = <$sock>)) { $head .= $line; last if $line eq "\r\n" }
            }
            if ($head =~ m{^HTTP/1\.1 (\d+)}) {
                my $status = $1;
                ($len) = $head =~ /Content-Length: (\d+)/i;
                my $rbody = '';
                while ($len && length($rbody) < $len) {
                    read($sock, $rbody, $len - length($rbody), length($rbody)) or last;
                }
                if ($head =~ /Connection: close/i) { close $sock; undef $sock }
                return [$status, $rbody];
            }
            close $sock if $sock;
            undef $sock;
            return [0, 'connection closed'] if $r{no_reconnect};
        }
        return [0, 'no answer'];
    };
}

# A flood: streams of POSTs sent at once by forked clients, each on its own
# keep-alive connection. A stream is { tag, n (requests), clients, path,
# body (form text), jar (its cookies go along), nodes (default all), gate (a
# path: its clients connect, then wait until the file exists, up to 30 s) };
# its client c talks to node nodes[c % nodes]. during => sub runs in the suite
# while the clients send. Returns every answer as { tag, node, status, error
# (the JSON "error", or "ok" for "ok":true), start, end (epoch seconds) }.
sub flood {
    my ($self, %o) = @_;
    my $d = $self->dir;
    my @kids;
    for my $s (@{$o{streams}}) {
        my $clients = $s->{clients} || 30;
        my $cookie = cookie_header($s->{jar});
        my @nodes = $s->{nodes} ? @{$s->{nodes}} : (1 .. scalar $self->nodes);
        for my $c (0 .. $clients - 1) {
            my $count = int($s->{n} / $clients) + ($c < $s->{n} % $clients ? 1 : 0);
            my $node = $nodes[$c % @nodes];
            my $out = "$d/flood-$$-" . scalar(@kids) . '.txt';
            my $pid = fork // die "fork: $!";
            if ($pid == 0) {
                my @lines;
                my $ask = eval { $self->connection($node) };
                if ($s->{gate}) {
                    my $until = time + 30;
                    sleep 0.002 until -e $s->{gate} || time > $until;
                }
                for (1 .. $count) {
                    my $start = time;
                    my $r = $ask ? $ask->('POST', $s->{path}, body => $s->{body}, cookie => $cookie) : [0, 'connect failed'];
                    my ($err) = $r->[1] =~ /"error":"([^"]+)"/;
                    $err //= $r->[1] =~ /"ok":true/ ? 'ok' : '-';
                    push @lines, join(' ', $node, $r->[0], $err, $start, time);
                }
                Certgate::Test::write_file($out, join("\n", @lines) . "\n");
                POSIX::_exit(0);
            }
            push @kids, [$pid, $out, $s->{tag} // ''];
        }
    }
    $o{during}->() if $o{during};
    my @res;
    for my $k (@kids) {
        waitpid($k->[0], 0);
        for (split /\n/, Certgate::Test::read_file($k->[1]) // '') {
            my ($node, $status, $error, $start, $end) = split / /;
            push @res, { tag => $k->[2], node => $node, status => $status, error => $error,
                start => $start, end => $end };
        }
        unlink $k->[1];
    }
    return @res;
}

# Stops every node and service; returns the bad lines of their logs.
sub stop_all {
    my ($self) = @_;
    my @bad;
    for my $n ($self->nodes) {
        $n->stop_nginx;
        push @bad, map { "node $n->{index}: $_" } $n->bad_log_lines;
    }
    $self->stop($_) for keys %{$self->{pids}};
    push @bad, $self->bad_log_lines;
    return @bad;
}

# Stops every node and service, checks every node's logs (Certgate::Test::done).
sub done {
    my ($self, %o) = @_;
    my @bad = $self->stop_all;
    @bad = grep { $_ !~ $o{allow} } @bad if $o{allow};
    ok(!@bad, 'no [alert], [emerg], [crit] or sanitizer report in the logs of any node')
        or diag(join "\n", @bad);
    $self->destroy_store;
    $self->{done} = 1;
}

sub destroy_store {
    my ($self) = @_;
    my $pg = delete $self->{pg} or return;
    Certgate::Test::run("$Certgate::Test::ROOT/t/lib/pgtmp", 'destroy', $pg);
}

sub DESTROY {
    my ($self) = @_;
    return if ($self->{owner} || 0) != $$;
    local $?;
    $_->DESTROY for grep { defined } @{$self->{nodes} || []};
    $self->SUPER::DESTROY;
    $self->destroy_store;
}

package Certgate::Fleet::Node;

use parent -norequire, 'Certgate::Test';

1;
