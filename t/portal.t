# The portal: the login screen of R13 with its four buttons and the help-desk
# footer of R18, its assets, and GET health watching memcached and the store
# through the thread pool.
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
$t->write_conf(<<'EOF');
    %%CERTGATE%%
    certgate_helpdesk "テスト労金ヘルプデスク" "0120-000-000" "9:00～18:00（平日）";
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
    }
EOF
$t->start_nginx;

subtest 'login screen: the four buttons of R13 and the help desk of R18' => sub {
    my $r = $t->get('/certgate/');
    is($r->{status}, 200, 'GET /certgate/ answers 200');
    like($r->{headers}{'content-type'}, qr{^text/html; charset=utf-8}, 'HTML in UTF-8');
    my $b = $r->{body};
    like($b, qr{<html lang="ja">}, 'Japanese by default');
    like($b, qr{<h1>ろうきん賃金控除事務支援システムログイン画面</h1>}, 'screen title of the manual');
    for my $label ('ログイン', 'マスターユーザーの初期登録', '一般ユーザーの初期登録', '電子証明書発行') {
        like($b, qr{<button type="submit"[^>]*>\Q$label\E</button>}, "button $label");
    }
    like($b, qr{<form class="cg-form" method="post" action="/certgate/login"}, 'ログイン posts to /certgate/login');
    like($b, qr{action="/certgate/register/master"}, 'master registration goes to register/master');
    is(scalar(() = $b =~ m{action="/certgate/issue"}g), 2, 'general registration and issuance go to the ④ screen');
    like($b, qr{name="user_id"[^>]*autocomplete="off"}, 'user ID field: autocomplete off (R15)');
    like($b, qr{name="password" type="password"[^>]*autocomplete="off"}, 'password field: autocomplete off (R15)');
    like($b, qr{<footer.*テスト労金ヘルプデスク.*0120-000-000.*9:00～18:00（平日）.*</footer>}s,
        'footer names the help desk, phone and hours');
    like($r->{headers}{'content-security-policy'}, qr{script-src 'self'}, 'strict CSP');
    like($r->{headers}{'content-security-policy'}, qr{frame-ancestors 'none'}, 'no framing');
    is($r->{headers}{'cache-control'}, 'no-store', 'page not cached');
    unlike($b, qr{<script>}, 'no inline script');
};

subtest 'English on request' => sub {
    my $r = $t->get('/certgate/?lang=en');
    like($r->{body}, qr{<html lang="en">}, 'lang=en gives English');
    like($r->{body}, qr{>Issue a certificate</button>}, 'English button');
    like($r->{body}, qr{href="/certgate/\?lang=ja"}, 'a switch back to Japanese');
};

subtest 'assets are served by the module' => sub {
    my $r = $t->get('/certgate/assets/certgate.css');
    is($r->{status}, 200, 'css');
    like($r->{headers}{'content-type'}, qr{^text/css}, 'css content type');
    $r = $t->get('/certgate/assets/certgate.js');
    is($r->{status}, 200, 'js');
    like($r->{headers}{'content-type'}, qr{^application/javascript}, 'js content type');
    $r = $t->get('/certgate/assets/nope.js');
    is($r->{status}, 404, 'unknown asset: 404');
    $r = $t->get('/certgate/nowhere', json => 1);
    is($r->{status}, 404, 'unknown path: 404');
    like($r->{body}, qr{"error":"not_found"}, 'JSON error code');
};

sub health { return $t->get('/certgate/health', json => 1) }

subtest 'health follows memcached without a reload' => sub {
    my $r = health();
    is($r->{status}, 200, 'all up: 200');
    like($r->{body}, qr{"memcached":\{"up":true\}}, 'memcached up');
    like($r->{body}, qr{"store":\{"up":true\}}, 'store up');

    $t->stop_memcached;
    my $stopped = time;
    $r = health();
    my $took = time - $stopped;
    is($r->{status}, 503, 'memcached stopped: 503');
    like($r->{body}, qr{"memcached":\{"up":false\}}, 'memcached reported down');
    like($r->{body}, qr{"store":\{"up":true\}}, 'store still up');
    cmp_ok($took, '<', 1, sprintf('reported down within a second (%.3fs)', $took));

    my $s = $t->get('/certgate/assets/certgate.css');
    is($s->{status}, 200, 'nginx keeps serving while memcached is down');

    $t->start_memcached;
    my $up = 0;
    for (1 .. 40) {
        $r = health();
        if ($r->{status} == 200) { $up = 1; last }
        sleep 0.1;
    }
    ok($up, 'memcached back: health is up again without a reload');
    like($r->{body}, qr{"memcached":\{"up":true\}}, 'memcached reported up');
};

subtest 'health follows the store' => sub {
    my $db = $t->dir . '/certgate.db';
    rename $db, "$db.away" or die $!;
    my $r = health();
    is($r->{status}, 503, 'store gone: 503');
    like($r->{body}, qr{"store":\{"up":false\}}, 'store reported down');
    rename "$db.away", $db or die $!;
    my $up = 0;
    for (1 .. 20) {
        $r = health();
        if ($r->{status} == 200) { $up = 1; last }
        sleep 0.1;
    }
    ok($up, 'store back: health is up again');
    unlike($r->{body}, qr{certgate\.db}, 'no file names on the health page');
};

$t->done;
done_testing;
