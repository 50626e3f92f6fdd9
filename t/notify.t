# Expiry notices (R3) and the mail outbox (issue 7): `certgatectl notify`
# runs the sweep the module's timer runs, with the clock set by its test-only
# --now; each certificate gets one notice 30 days before expiry and one once
# expired, however often and from however many processes the sweep runs; with
# the SMTP relay stopped the mails stay queued and go out once it is back.
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_smtp;
# certgatectl reads the certgate_* lines of the suite's nginx.conf.
my $conf = $t->write_conf(<<'EOF');
    %%CERTGATE%%
    certgate_helpdesk "Labour Bank Help Desk" 0120-000-000 "9:00-17:00";
EOF

sub notify {
    my (@args) = @_;
    my ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', '-c', $conf,
        '--json', 'notify', @args);
    require JSON::PP;
    my $r = eval { JSON::PP::decode_json($out) } || {};
    $r->{rc} = $rc;
    $r->{out} = $out;
    return $r;
}

$t->add_org('ORG001');
my $now = time;
# A user with a certificate recorded in the store, valid until $not_after;
# its serial.
sub user_with_certificate {
    my ($user, $not_after) = @_;
    $t->add_user('ORG001', $user, 'Passw0rd!');
    my $name = $t->client_cert($user, days => 400);
    my $s = `openssl x509 -noout -serial -in @{[$t->dir]}/$name.crt`;
    $s =~ s/^serial=//;
    chomp $s;
    my ($rc, $out) = $t->certgatectl('cert', 'import', $t->dir . "/$name.crt", '--user', $user);
    die "cert import: $out" if $rc;
    $t->sql("UPDATE certificates SET not_after = $not_after WHERE serial = '$s'");
    return $s;
}

my %serial = map { $_ => user_with_certificate($_, $now + 60 * 86400) } qw(soon0001 gone0001 down0001);

sub mails_to {
    my ($user) = @_;
    return grep { $_->{to} =~ /\Q$user\E/ } $t->decoded_mails;
}

subtest 'nothing is due 60 days before expiry' => sub {
    my $r = notify();
    is($r->{rc}, 0, 'notify runs') or diag $r->{out};
    is($r->{expiring} + $r->{expired}, 0, 'no notice queued');
    is($r->{sent}, 0, 'no mail sent');
};

subtest '30 days before expiry: one notice, however often the sweep runs' => sub {
    my $r = notify('--now', $now + 31 * 86400);
    is($r->{expiring}, 3, 'one expiring notice for each certificate');
    is($r->{sent}, 3, 'all three sent');
    $r = notify('--now', $now + 32 * 86400);
    is($r->{expiring} + $r->{sent}, 0, 'the next sweep sends nothing more');
    my @m = $t->wait_mails(3);
    my @soon = mails_to('soon0001');
    is(scalar @soon, 1, 'one mail to soon0001');
    like($soon[0]{subject}, qr/有効期限/, 'about the expiry');
    like($soon[0]{body}, qr/Labour Bank Help Desk/, 'the help desk is named');
    unlike($soon[0]{body}, qr/English follows/, 'in Japanese only (certgate_language ja, the default)');
};

subtest 'once expired: one notice, from four sweeps at once' => sub {
    my $at = $now + 61 * 86400;
    my @pids;
    for (1 .. 4) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', '-c', $conf,
                'notify', '--now', $at);
            exit 0;
        }
        push @pids, $pid;
    }
    waitpid($_, 0) for @pids;
    my @m = $t->wait_mails(6);
    is(scalar @m, 6, 'six mails in all: two for each certificate');
    my @gone = mails_to('gone0001');
    is(scalar @gone, 2, 'gone0001 got two notices');
    like($gone[1]{subject}, qr/有効期限切れ/, 'the second says it has expired');
    my $r = notify('--now', $at + 3600);
    is($r->{expired} + $r->{sent}, 0, 'a later sweep sends nothing more');
    my @claims = grep { $_->{kind} eq 'cert.notice' && $_->{subject} eq $serial{gone0001} } $t->audit;
    is(scalar @claims, 2, 'the audit trail holds one claim per notice');
};

subtest 'SMTP stopped: notices stay queued, go once it is back' => sub {
    user_with_certificate('late0001', $now + 80 * 86400);
    $t->stop_smtp;
    my ($rc, $out);
    my $at = $now + 55 * 86400;
    my $r = notify('--now', $at);
    is($r->{expiring}, 1, 'the notice is queued');
    is($r->{sent}, 0, 'not sent: the relay is down');
    is($r->{retried}, 1, 'it waits for a retry');
    ($rc, $out) = $t->certgatectl('--json', 'mail', 'list', '--state', 'queued');
    like($out, qr/late0001/, 'certgatectl mail list shows it queued');
    $r = notify('--now', $at + 10);
    is($r->{sent}, 0, 'within the backoff nothing is tried');

    $t->start_smtp;
    $r = notify('--now', $at + 120);
    is($r->{sent}, 1, 'SMTP back: the mail goes');
    $r = notify('--now', $at + 3600);
    is($r->{sent} + $r->{expiring}, 0, 'and only once');
    $t->wait_mails(7);
    my @late = mails_to('late0001');
    is(scalar @late, 1, 'late0001 got one mail');
};

subtest 'the module sweeps on its timer: 2 workers and the CLI at once send each notice once' => sub {
    $t->start_memcached;
    my %cert = (tsoon001 => $now + 10 * 86400, tgone001 => $now - 86400);
    user_with_certificate($_, $cert{$_}) for sort keys %cert;
    # certgate_language auto at the http level: notices in both languages
    # (a server's own certgate_language is for its pages only).
    $t->write_conf(<<'EOF', workers => 2);
    %%CERTGATE%%
    certgate_notify_interval 1s;
    certgate_language auto;
    server {
%%TLS%%
        certgate_language ja;
        location /certgate/ { certgate_portal; }
    }
EOF
    $t->start_nginx;
    my @pids;
    for (1 .. 3) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', '-c', $conf, 'notify');
            exit 0;
        }
        push @pids, $pid;
    }
    waitpid($_, 0) for @pids;
    my $before = () = $t->decoded_mails;
    $t->wait_mails($before + 2, 10);
    sleep 3;  # a few more turns of the timer
    is(scalar(mails_to('tsoon001')), 1, 'one notice 10 days before expiry');
    is(scalar(mails_to('tgone001')), 1, 'one notice once expired');
    my ($soon) = mails_to('tsoon001');
    like($soon->{subject}, qr{有効期限.* / .*[Cc]ertificate}, 'certgate_language auto: a subject in both languages');
    like($soon->{body}, qr/有効期限：.*English follows.*Valid until:/s, 'and the body: Japanese, then English');
    my @claims = grep { $_->{kind} eq 'cert.notice' } $t->audit;
    is(scalar @claims, 9, 'one claim per notice in the whole suite');

    # The relay down: the timer queues the notice; once the relay is back,
    # `certgatectl mail retry` makes it due and the timer sends it, no reload.
    $t->stop_smtp;
    user_with_certificate('tdown001', $now + 5 * 86400);
    my $queued;
    for (1 .. 50) {
        my ($rc, $out) = $t->certgatectl('--json', 'mail', 'list', '--state', 'queued');
        ($queued) = $out =~ /"id":(\d+),"to":"tdown001\@/;
        last if $queued;
        sleep 0.2;
    }
    ok($queued, 'the notice waits in the outbox');
    $t->start_smtp;
    my ($rc, $out) = $t->certgatectl('mail', 'retry', $queued // 0);
    is($rc, 0, 'certgatectl mail retry') or diag $out;
    for (1 .. 50) { last if mails_to('tdown001'); sleep 0.2 }
    sleep 2;
    is(scalar(mails_to('tdown001')), 1, 'the timer delivers it once');
};

$t->done;
done_testing;
