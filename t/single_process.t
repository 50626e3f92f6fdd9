# nginx as Test::Nginx runs it (issue 12): one process, no master
# (master_process off; daemon off) and error_log debug. The portal, a login,
# the protected path, the issuance endpoints, logout and a revocation reaching
# the set all work, the module's timers fire with debug logging on, and QUIT
# stops nginx cleanly.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ':sys_wait_h';
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
$t->write_conf(<<'EOF', master_process => 'off', log_level => 'debug');
    %%CERTGATE%%
    certgate_sync_interval 300ms;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location / { return 200 "user=$http_x_certgate_user\n"; }
    }
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            proxy_set_header X-Certgate-User $certgate_user;
            proxy_pass http://127.0.0.1:%%HTTP_PORT%%;
        }
    }
EOF
$t->start_nginx;
my $pid = $t->{pids}{nginx};
my $pw = 'Passw0rd!';
$t->add_org('ORG001');
$t->add_user('ORG001', $_, $pw) for qw(single01 single02);

sub alive { return waitpid($pid, WNOHANG) == 0 }

my $r = $t->get('/certgate/');
is($r->{status}, 200, 'the login screen answers');
like($r->{body}, qr/ログイン/, 'with its buttons');
ok(alive(), 'nginx is still running after the first request');

$r = $t->get('/certgate/issue', json => 1);
is($r->{status}, 200, 'the issuance endpoint answers');
ok(Certgate::Test::json_of($r)->{csrf_token}, 'with a csrf_token');

my %cert = map { $_ => $t->issue_certificate($_, $pw) } qw(single01 single02);
ok($cert{$_}{ok}, "$_ walks ④ → ⑤ → ⑥ and downloads its certificate") for sort keys %cert;

my $jar = $t->jar;
ok($t->login('single01', $pw, cert => $cert{single01}{name}, jar => $jar)->{json}{ok}, 'single01 logs in');
$r = $t->get('/app/x', cert => $cert{single01}{name}, cookies => $jar);
is($r->{status}, 200, 'the protected location passes');
is($r->{body}, "user=single01\n", 'and the app learns the user');

$r = $t->submit('/certgate/logout', {}, jar => $jar, cert => $cert{single01}{name});
ok($r->{json}{ok}, 'logout');
is($t->get('/app/x', cert => $cert{single01}{name}, cookies => $jar, json => 1)->{status}, 401,
    'after logout the protected location refuses');

my $jar2 = $t->jar;
ok($t->login('single02', $pw, cert => $cert{single02}{name}, jar => $jar2)->{json}{ok}, 'single02 logs in');
is($t->get('/app/x', cert => $cert{single02}{name}, cookies => $jar2)->{status}, 200, 'passes');
$t->certgatectl('cert', 'revoke', $cert{single02}{serial}, '--reason', 'keyCompromise');
my $status;
my $deadline = time + 5;
while (time < $deadline) {
    $status = $t->get('/app/x', cert => $cert{single02}{name}, cookies => $jar2, json => 1)->{status};
    last if $status == 401;
    sleep 0.1;
}
is($status, 401, 'a revocation reaches the set through the feed (the sync timer fires)');

# The feed's timer and the mail timer have fired many times by now.
my $log = $t->error_log;
my $fires = () = $log =~ /event timer del: -1: /g;
cmp_ok($fires, '>', 5, "the module's timers fired under debug logging ($fires times)");
unlike($log, qr/exited on signal|\[alert\]/, 'no crash');
ok(alive(), 'the single nginx process is alive');

$t->stop_nginx;
ok(!kill(0, $pid), 'QUIT stops it');
like($t->error_log, qr/exit\s*$/m, 'nginx logged its exit');

$t->done;
done_testing;
