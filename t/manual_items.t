# Issue 16 (part B), the manual's small items: ⑦ is a 電子証明書発行中 screen
# of its own; ⑧ has ［閉じる］; the download link pressed again says the file
# was downloaded (not 404); a wrong code says how many tries are left; the
# footer carries certgate_footer_note; the initial-password letter names the
# system URL (certgate_portal_url), the date the password runs out and the
# help desk.
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX qw(strftime);
use Time::HiRes qw(sleep);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $conf = $t->write_conf(<<'EOF');
    %%CERTGATE%%
    certgate_helpdesk "ろうきんヘルプデスク" 0120-000-000 "平日 9:00～17:00";
    certgate_footer_note "※1月1日～1月3日、12月31日はご利用いただけません。" "Not available on 1-3 January and 31 December.";
    certgate_portal_url https://portal.example.test/certgate/;
    server {
        %%TLS%%
        location /certgate/ { certgate_portal; }
    }
EOF
$t->start_nginx;
$t->add_org('ORG001');
$t->add_user('ORG001', 'user0001', 'Passw0rd!');
$t->add_user('ORG001', 'user0002', 'Passw0rd!');

subtest 'the footer carries certgate_footer_note, in each language' => sub {
    my $r = $t->get('/certgate/');
    like($r->{body}, qr{<p class="cg-footer-note">※1月1日～1月3日、12月31日はご利用いただけません。</p>},
        'Japanese');
    $r = $t->get('/certgate/issue?lang=en');
    like($r->{body}, qr{<p class="cg-footer-note">Not available on 1-3 January and 31 December.</p>},
        'English');
};

subtest 'a wrong code says how many tries are left' => sub {
    my $jar = $t->jar;
    my $r = $t->submit('/certgate/issue', { user_id => 'user0001', password => 'Passw0rd!' }, jar => $jar);
    ok($r->{json}{ok}, '④ passes') or diag $r->{body};
    $r = $t->submit('/certgate/issue/code', { code => '000000' }, jar => $jar);
    is($r->{json}{error}, 'bad_code', 'bad_code');
    like($r->{json}{message}, qr/残り入力回数：5回/, '5 tries left (certgate_code 6 30m 5)');
    $r = $t->submit('/certgate/issue/code', { code => '000001' }, jar => $jar, html => 1);
    like($r->{body}, qr/認証コードが正しくありません。残り入力回数：4回/, 'then 4, on the page');
    $r = $t->submit('/certgate/issue/code?lang=en', { code => '000002' }, jar => $jar);
    like($r->{json}{message}, qr/Tries left: 3\./, 'in English');
};

my ($jar, $download);
subtest '⑥ holds the ⑦ screen: its title and its step' => sub {
    $jar = $t->jar;
    my $r = $t->submit('/certgate/issue', { user_id => 'user0002', password => 'Passw0rd!' }, jar => $jar);
    $r = $t->submit('/certgate/issue/code', { code => $t->code_for('user0002') }, jar => $jar);
    ok($r->{json}{ok}, '⑤ passes') or diag $r->{body};
    $r = $t->get('/certgate/issue/confirm', cookies => $jar);
    like($r->{body}, qr{<li class="cg-current" aria-current="step"><span class="cg-step-mark">⑥</span>},
        '⑥ highlights ⑥');
    like($r->{body}, qr{id="cg-progress" hidden[^>]*data-title="電子証明書発行中" data-step="7"},
        'its ⑦ panel carries the screen title and step for the script');
    # ⑦ while the key is made (test builds hold the task on request).
    my $token = Certgate::Test::json_of($t->get('/certgate/', json => 1, cookies => $jar))->{csrf_token};
    my $pid = fork // die;
    if (!$pid) {
        $t->request('/certgate/issue/confirm?keygen_delay_ms=3000', method => 'POST', json => 1,
            cookies => $jar, body => { csrf_token => $token });
        POSIX::_exit(0);
    }
    my $progress;
    for (1 .. 50) {
        $progress = $t->get('/certgate/issue/confirm', cookies => $jar);
        last if $progress->{body} =~ /cg-progress-bar/ && $progress->{body} !~ /cg-issue-form/;
        sleep 0.1;
    }
    like($progress->{body}, qr{<h1>電子証明書発行中</h1>}, '⑦: its own title');
    like($progress->{body}, qr{<li class="cg-current" aria-current="step"><span class="cg-step-mark">⑦</span>},
        '⑦: the step bar on ⑦');
    waitpid $pid, 0;
    $r = $t->get('/certgate/issue/confirm', json => 1, cookies => $jar);
    $download = Certgate::Test::json_of($r)->{download};
    ok($download, '⑧ has the download') or diag $r->{body};
};

subtest '⑧: ［閉じる］, and a link that is not a forced download' => sub {
    my $r = $t->get('/certgate/issue/confirm', cookies => $jar);
    like($r->{body}, qr{<a class="cg-button" id="cg-close" href="/certgate/" data-close>閉じる</a>},
        'the ［閉じる］ button');
    like($r->{body}, qr{id="cg-close-note" hidden>ブラウザの閉じる\[×\]ボタン}, 'with the Edge note');
    like($r->{body}, qr{<a [^>]*id="cg-download" href="\Q$download\E" data-auto-download>},
        'the download link');
    unlike($r->{body}, qr{id="cg-download"[^>]* download=}, 'without a download attribute: a refusal shows as a page');
};

subtest 'the download pressed again: already downloaded, not 404' => sub {
    my $r = $t->request($download, cookies => $jar);
    is($r->{status}, 200, 'the first download');
    is($r->{headers}{'content-type'}, 'application/x-pkcs12', 'the .p12');
    $r = $t->request($download, cookies => $jar);
    is($r->{status}, 410, 'again: 410');
    like($r->{body}, qr/電子証明書ファイルはダウンロード済みです/, 'already downloaded');
    unlike($r->{body}, qr/ページが見つかりません/, 'not "page not found"');
    $r = $t->request($download, cookies => $jar, json => 1);
    is(Certgate::Test::json_of($r)->{error}, 'already_downloaded', 'JSON: already_downloaded');
    $r = $t->request($download);
    is($r->{status}, 404, 'another browser (no flow): still not found');
};

subtest 'the letter names the URL, the expiry and the help desk' => sub {
    my ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', '-c', $conf,
        'user', 'add-general', 'ORG001', 'letter01', '--mail', 'letter01@example.test');
    is($rc, 0, 'add-general prints the letter') or diag $out;
    my $until = strftime('%Y-%m-%d', gmtime(time + 9 * 3600 + 30 * 86400));
    $out = Encode::decode('UTF-8', $out);
    like($out, qr{システムのURL / System URL:\s+https://portal\.example\.test/certgate/}, 'the URL');
    like($out, qr{有効期限 / Valid until:\s+\Q$until\E}, 'the expiry (30 days, Asia/Tokyo)');
    like($out, qr{お問い合わせ / Help desk: ろうきんヘルプデスク  0120-000-000  平日 9:00～17:00}, 'the help desk');
    like($out, qr{団体のマスターユーザーに再発行}, 'who to ask after the expiry');
    ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', '-c', $conf,
        'user', 'reset', 'letter01', '--html');
    is($rc, 0, 'reset --html') or diag $out;
    $out = Encode::decode('UTF-8', $out);
    like($out, qr{<td>https://portal\.example\.test/certgate/</td>}, 'HTML: the URL');
    like($out, qr{<td>\Q$until\E</td>}, 'HTML: the expiry');
    like($out, qr{Help desk: ろうきんヘルプデスク 0120-000-000}, 'HTML: the help desk');
};

$t->done;
done_testing;
