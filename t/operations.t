# Operations (issue 17): the Prometheus metrics of certgate_metrics moving by
# the right amounts, the load balancer's health/live and health/ready (503
# within 2 s of memcached or the store going away, 200 again after, no
# reload), the audit export to a syslog listener (one JSON line per event, no
# secret), and nginx -t's messages for the new directives.
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use JSON::PP;
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;

# The syslog listener the SIEM would be.
my $syslog = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1', LocalPort => 0)
    or die "udp listener: $!";
$syslog->blocking(0);
my $syslog_port = $syslog->sockport;

$t->write_conf(<<"EOF");
    %%CERTGATE%%
    certgate_audit syslog:server=127.0.0.1:$syslog_port,facility=local3,tag=certgate-t;
    certgate_sync_interval 500ms;
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location = /metrics { certgate_metrics; }
    }
EOF
$t->start_nginx;

$t->add_org('ORG001');
my $pw = 'Passw0rd!';
my $wrong = 'Wr0ngPass#';
$t->add_user('ORG001', $_, $pw) for qw(metric01 lockme01 issueme1);

# Parses the scrape with python3-prometheus-client; returns { "name{labels}" => value }.
sub scrape {
    my $r = $t->get('/metrics');
    die "metrics: status $r->{status}" unless $r->{status} == 200;
    my $file = $t->dir . '/scrape.txt';
    Certgate::Test::write_file($file, $r->{raw_body});
    my $py = join "\n",
        'import sys, json',
        'from prometheus_client.parser import text_string_to_metric_families',
        'out = {}',
        'for fam in text_string_to_metric_families(open(sys.argv[1]).read()):',
        '    for s in fam.samples:',
        '        labels = ",".join("%s=%s" % (k, v) for k, v in sorted(s.labels.items()))',
        '        out[s.name + "{" + labels + "}"] = s.value',
        'print(json.dumps(out))', '';
    my ($rc, $out) = Certgate::Test::run('/usr/bin/python3', '-c', $py, $file);
    die "the prometheus parser refused the scrape: $out" if $rc;
    return (decode_json($out), $r);
}

sub delta {
    my ($before, $after, $key) = @_;
    return ($after->{$key} // 0) - ($before->{$key} // 0);
}

subtest 'metrics: the format and the content type' => sub {
    my ($m, $r) = scrape();
    is($r->{headers}{'content-type'}, 'text/plain; version=0.0.4', 'Prometheus text format 0.0.4');
    ok(exists $m->{'certgate_logins_total{result=ok}'}, 'logins are listed by result');
    ok(exists $m->{'certgate_issuance_duration_seconds_bucket{key_type=rsa:2048,le=+Inf}'},
        'issuance histogram by key type');
    unlike($r->{body}, qr/metric01|lockme01|issueme1/, 'no user ID in any label');
};

subtest 'metrics: a failed login' => sub {
    my $cert = $t->client_cert('metric01', org => 'ORG001');
    my ($before) = scrape();
    my $r = $t->login('metric01', $wrong, cert => $cert);
    is($r->{json}{error}, 'bad_credentials', 'the login fails');
    my ($after) = scrape();
    is(delta($before, $after, 'certgate_logins_total{result=bad_credentials}'), 1,
        'logins{result=bad_credentials} +1');
    is(delta($before, $after, 'certgate_logins_total{result=ok}'), 0, 'logins{result=ok} unchanged');
    is(delta($before, $after, 'certgate_auth_codes_sent_total{}'), 0, 'no code sent');
};

subtest 'metrics: a lock after six wrong passwords' => sub {
    my ($before) = scrape();
    for (1 .. 6) {
        $t->submit('/certgate/issue', { user_id => 'lockme01', password => $wrong });
    }
    my $r = $t->submit('/certgate/issue', { user_id => 'lockme01', password => $pw });
    is($r->{json}{error}, 'locked', 'the user is locked');
    my ($after) = scrape();
    is(delta($before, $after, 'certgate_locks_total{}'), 1, 'locks +1');
    is(delta($before, $after, 'certgate_blocks_total{}'), 0, 'blocks unchanged');
    # The sixth answer may already say locked (that try makes the lock).
    my $bad = delta($before, $after, 'certgate_issue_auth_total{result=bad_credentials}');
    my $locked = delta($before, $after, 'certgate_issue_auth_total{result=locked}');
    is($bad + $locked, 7, '④ results: 7 refusals counted');
    ok($locked >= 1, '④ results: locked counted');
};

subtest 'metrics: an issuance' => sub {
    my ($before) = scrape();
    my $res = $t->issue_certificate('issueme1', $pw);
    ok($res->{ok}, 'issued') or diag(explain($res));
    my ($after) = scrape();
    is(delta($before, $after, 'certgate_issue_auth_total{result=ok}'), 1, '④ ok +1');
    is(delta($before, $after, 'certgate_auth_codes_sent_total{}'), 1, 'codes sent +1');
    is(delta($before, $after, 'certgate_auth_codes_checked_total{result=ok}'), 1, 'codes accepted +1');
    is(delta($before, $after, 'certgate_certificates_issued_total{key_type=rsa:2048}'), 1,
        'issued{rsa:2048} +1');
    is(delta($before, $after, 'certgate_issuance_duration_seconds_count{key_type=rsa:2048}'), 1,
        'duration histogram count +1');
    ok(delta($before, $after, 'certgate_issuance_duration_seconds_sum{key_type=rsa:2048}') > 0,
        'duration sum grows');
    is(delta($before, $after, 'certgate_downloads_total{}'), 1, 'download tokens used +1');
    is($after->{'certgate_tasks_running{}'}, 0, 'no task running now');

    my ($rc, $out) = $t->certgatectl('cert', 'revoke', $res->{serial}, '--reason', 'keyCompromise');
    is($rc, 0, 'certgatectl revokes') or diag($out);
    my $seen = 0;
    for (1 .. 40) {
        my ($m) = scrape();
        if (delta($after, $m, 'certgate_revocations_total{}') == 1) { $seen = 1; last }
        sleep 0.1;
    }
    ok($seen, 'the revocation reaches revocations_total through the feed');
    my ($m) = scrape();
    ok(defined $m->{'certgate_revocation_feed_lag_seconds{}'}
            && $m->{'certgate_revocation_feed_lag_seconds{}'} <= 2, 'feed lag is small');
    ok($m->{'certgate_revocation_zone_used_bytes{}'} > 0, 'zone use is shown');
    ok(defined $m->{'certgate_outbox_mails{}'}, 'outbox depth is shown');
};

sub ready { my $r = $t->get('/certgate/health/ready'); $r->{json} = Certgate::Test::json_of($r); return $r }

# Polls until the readiness status is $want; returns the seconds it took (or undef).
sub until_ready_is {
    my ($want, $limit) = @_;
    my $start = time;
    while (time - $start < $limit) {
        # the time the probe was sent: under CI load its answer can take a
        # few hundred ms, which is the client's wait, not the node's
        my $asked = time;
        my $r = ready();
        return $asked - $start if $r->{status} == $want;
        sleep 0.1;
    }
    return undef;
}

subtest 'health: live and ready' => sub {
    my $r = $t->get('/certgate/health/live');
    is($r->{status}, 200, 'live: 200');
    is(Certgate::Test::json_of($r)->{status}, 'ok', 'live: JSON');
    $r = ready();
    is($r->{status}, 200, 'ready: 200') or diag($r->{body});
    is($r->{json}{status}, 'ready', 'ready: JSON status');
    ok($r->{json}{feed}{fresh}, 'the feed is fresh');
    ok($r->{json}{ca_key}{up}, 'the CA key is usable');
    is($t->get('/certgate/health')->{status}, 200, 'health as before');
};

subtest 'health: ready follows memcached' => sub {
    $t->stop_memcached;
    my $took = until_ready_is(503, 5);
    ok(defined $took && $took <= 2, 'ready goes 503 within 2 s of memcached stopping')
        or diag("took " . ($took // 'more than 5 s'));
    ok(!ready()->{json}{memcached}{up}, 'and says memcached is down');
    is($t->get('/certgate/health/live')->{status}, 200, 'live stays 200');
    $t->start_memcached;
    $took = until_ready_is(200, 5);
    ok(defined $took && $took <= 2, 'ready is 200 again once memcached is back, no reload')
        or diag("took " . ($took // 'more than 5 s'));
};

subtest 'health: ready follows the store' => sub {
    my $db = $t->dir . '/certgate.db';
    rename($db, "$db.away") or die "rename: $!";
    my $took = until_ready_is(503, 5);
    rename("$db.away", $db) or die "rename back: $!";
    ok(defined $took && $took <= 2, 'ready goes 503 within 2 s of the store file going away')
        or diag("took " . ($took // 'more than 5 s'));
    $took = until_ready_is(200, 5);
    ok(defined $took && $took <= 2, 'ready is 200 again once the file is back')
        or diag("took " . ($took // 'more than 5 s'));
};

subtest 'audit: one JSON line per event at the syslog listener, no secret' => sub {
    my @lines;
    my $deadline = time + 2;
    while (time < $deadline) {
        while (defined $syslog->recv(my $buf, 65536)) {
            last unless length $buf;
            push @lines, $buf;
        }
        sleep 0.1;
    }
    my ($m) = scrape();
    ok(@lines >= 10, scalar(@lines) . ' datagrams arrived');
    my (@json, @bad);
    for my $l (@lines) {
        if ($l =~ /^<(\d+)>1 \S+ \S+ certgate-t \d+ audit - (\{.*\})\z/s) {
            is($1, 19 * 8 + 6, 'facility local3, severity info') if !@json;
            my $j = eval { decode_json($2) };
            $j ? push(@json, $j) : push(@bad, $l);
        } else {
            push @bad, $l;
        }
    }
    is(scalar(@bad), 0, 'every datagram is RFC 5424 with a JSON message') or diag(explain(\@bad));
    my %ids;
    $ids{$_->{id}}++ for @json;
    is(scalar(grep { $_ > 1 } values %ids), 0, 'one datagram per event (no id twice)');
    for my $f (qw(time id kind actor subject detail node)) {
        is(scalar(grep { !defined $_->{$f} } @json), 0, "every line has $f");
    }
    is(scalar(grep { $_->{time} !~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\z/ } @json), 0, 'RFC 3339 UTC times');
    my %kinds = map { $_->{kind} => 1 } @json;
    ok($kinds{$_}, "the $_ event is there") for qw(auth.failed user.locked cert.issued cert.downloaded);
    my %stored = map { $_->{id} => $_ } $t->audit;
    my @mismatch = grep { !$stored{$_->{id}} || $stored{$_->{id}}{kind} ne $_->{kind} } @json;
    is(scalar(@mismatch), 0, 'each line is a stored event');
    my @codes = map { /(?:認証コード：|Authentication code: )(\d{6,10})/ ? $1 : () }
        map { $_->{body} } $t->decoded_mails;
    ok(@codes, 'the mailed codes are known to the test');
    my $all = join "\n", @lines;
    for my $secret ($pw, $wrong, @codes) {
        unlike($all, qr/\Q$secret\E/, 'no secret in the export');
    }
    unlike($all, qr/__Host-|certgate_session|download\/[A-Za-z0-9_-]{20,}/, 'no cookie or token');
    is($m->{'certgate_audit_events_total{result=dropped}'}, 0, 'nothing dropped');
    # Counted as sent; an event written after the drain above (none expected) may still be in flight.
    my $before_scrape = @lines;
    sleep 0.3;
    while (defined $syslog->recv(my $buf, 65536)) { last unless length $buf; push @lines, $buf }
    my $exported = $m->{'certgate_audit_events_total{result=exported}'};
    ok($exported >= $before_scrape && $exported <= @lines, "exported are counted ($exported)");
};

subtest 'certgatectl audit: --since/--until times, --jsonl lines' => sub {
    my @all = $t->audit;
    ok(@all > 10, 'events are there');
    my ($rc, $out) = $t->certgatectl('audit', '--jsonl');
    is($rc, 0, 'audit --jsonl') or diag($out);
    my @lines = split /\n/, $out;
    is(scalar(@lines), scalar(@all), 'one line per event');
    my @parsed = map { eval { decode_json($_) } } @lines;
    is(scalar(@parsed), scalar(@lines), 'every line is JSON');
    ok(!(grep { !defined $_->{node} || $_->{time} !~ /Z\z/ } @parsed), 'with node and a UTC time');
    is(scalar(grep { /\Q$pw\E|\Q$wrong\E/ } @lines), 0, 'no password');

    # A window by time: the events of the lock subtest's second and after.
    my $mid = $all[int(@all / 2)]{at};
    my @iso = gmtime($mid);
    my $since = sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ', $iso[5] + 1900, $iso[4] + 1, @iso[3, 2, 1, 0]);
    my @window = $t->audit('--since', $since, '--until', '@' . ($mid + 1));
    my @want = grep { $_->{at} == $mid } @all;
    is_deeply([map { $_->{id} } @window], [map { $_->{id} } @want], '--since TIME --until TIME picks that second')
        or diag("since $since");
    ok(!(grep { !$_->{time} } @window), '--json adds the RFC 3339 time');
    my @since_id = $t->audit('--since', $all[-2]{id});
    is(scalar(@since_id), 1, '--since N still means after event N');
    @iso = gmtime($mid + 9 * 3600);
    my $jst = sprintf('%04d-%02d-%02dT%02d:%02d:%02d+09:00', $iso[5] + 1900, $iso[4] + 1, @iso[3, 2, 1, 0]);
    ($rc, $out) = $t->certgatectl('audit', '--since', 'yesterday');
    isnt($rc, 0, 'a bad time is refused');
    like($out, qr/--since 'yesterday' is not an event number, a time/, 'and says what it takes');
    my @jst = $t->audit('--since', $jst, '--until', '@' . ($mid + 1));
    is_deeply([map { $_->{id} } @jst], [map { $_->{id} } @want], 'the same second written in +09:00');
};

subtest 'nginx -t: bad certgate_audit and certgate_metrics name the file and line' => sub {
    my $d = $t->dir;
    my $module = Certgate::Test::build_dir() . '/ngx_http_certgate_module.so';
    my %cases = (
        'certgate_audit udp://127.0.0.1:514;' => qr/certgate_audit: .*neither file:/,
        'certgate_audit syslog:server=localhost:514;' => qr/is not an IP address/,
        'certgate_audit syslog:server=127.0.0.1:99999;' => qr/invalid port/,
        'certgate_audit syslog:server=127.0.0.1:514,facility=local9;' => qr/unknown facility/,
        'certgate_audit file:relative.log;' => qr/absolute path/,
        'server { location /m { certgate_metrics on; } }' => qr/invalid number of arguments in "certgate_metrics"/,
    );
    for my $line (sort keys %cases) {
        Certgate::Test::write_file("$d/bad.conf",
            "load_module $module;\nevents {}\nhttp {\n    $line\n}\n");
        my ($rc, $out) = $t->nginx_t("$d/bad.conf");
        $out .= Certgate::Test::read_file("$d/logs/error-t.log") // '';
        isnt($rc, 0, "'$line' fails nginx -t");
        like($out, $cases{$line}, "'$line': the message says why");
        like($out, qr/\Q$d\/bad.conf\E:4/, "'$line': names the file and line");
    }
};

# nginx -t of the bad files above logs [emerg] by design.
$t->done(allow => qr{bad\.conf});
done_testing;
