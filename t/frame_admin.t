# Issue 16 part A: after login the clerk lands in the application (return=,
# certgate_home), the logged-in frame on certgate's pages and its variables
# for the upstream, and the master's admin table (columns, states, the
# confirmation of 利用停止 and パスワード初期化, a result for every action).
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $http = <<'EOF';
    %%CERTGATE%%
    certgate_sync_interval 500ms;
    certgate_lockout 6 60m 3;
    certgate_home /app/home;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location / {
            return 200 "user=$http_x_certgate_user logout=$http_x_certgate_logout csrf=$http_x_certgate_csrf admin=$http_x_certgate_admin\n";
        }
    }
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            proxy_set_header X-Certgate-User $certgate_user;
            proxy_set_header X-Certgate-Logout $certgate_logout_url;
            proxy_set_header X-Certgate-Csrf $certgate_csrf_token;
            proxy_set_header X-Certgate-Admin $certgate_admin_url;
            proxy_pass http://127.0.0.1:%%HTTP_PORT%%;
        }
    }
EOF
$t->write_conf($http);
$t->start_nginx;
my $pw = 'Passw0rd!';
$t->add_org('ORG001');
$t->add_user('ORG001', 'master01', $pw, master => 1);
$t->add_user('ORG001', $_, $pw) for qw(general1 general2 general3 general4 nocert01);
my %cert;
$cert{$_} = $t->issue_certificate($_, $pw) for qw(master01 general1 general2 general3 general4);
ok($cert{$_}{ok}, "$_ has a certificate") for sort keys %cert;

sub session_of {
    my ($user) = @_;
    my $jar = $t->jar;
    my $r = $t->login($user, $pw, cert => $cert{$user}{name}, jar => $jar);
    ok($r->{json}{ok}, "$user logs in") or diag explain $r->{json};
    return $jar;
}
sub page {
    my ($path, $user, $jar) = @_;
    $path =~ s{^https://[^/]+}{};  # a Location header
    $t->get($path, cert => $user && $cert{$user}{name}, cookies => $jar);
}
sub user_state {
    my ($user) = @_;
    my ($rc, $out) = $t->certgatectl('--json', 'user', 'show', $user);
    return $rc ? '' : (JSON::PP::decode_json($out)->{state} // '');
}
require JSON::PP;

subtest 'after login: return= when it stays on this site, else certgate_home' => sub {
    for my $to ('/app/report?month=11', '/app/a%20b', '/', '/certgate/admin/users') {
        my $r = $t->login('general1', $pw, cert => $cert{general1}{name}, return => $to);
        is($r->{json}{next}, $to, "return=$to is followed");
    }
    my @refused = ('https://evil.example/', '//evil.example/', '/\\evil.example', '\\\\evil.example',
        'javascript:alert(1)', 'app/relative', '/app//x', '/app/%2F%2Fevil.example', '/app/%5Cevil',
        "/app/\tx", "/app/\x01x", '/app/%0d%0aSet-Cookie:x', '/app/x y', "/app/\x{e9}");
    for my $to (@refused) {
        my $r = $t->login('general1', $pw, cert => $cert{general1}{name}, return => $to);
        is($r->{json}{next}, '/app/home', 'return=' . quotemeta($to) . ' is refused: certgate_home');
    }
    my $r = $t->login('general1', $pw, cert => $cert{general1}{name});
    is($r->{json}{next}, '/app/home', 'no return=: certgate_home');
    my $html = $t->submit('/certgate/login', { user_id => 'general1', password => $pw }, html => 1,
        cert => $cert{general1}{name});
    is($html->{status}, 303, 'a browser is sent on');
    like($html->{headers}{location}, qr{^https://127\.0\.0\.1:\d+/app/home$}, 'to certgate_home');
    my $screen = $t->get('/certgate/?return=%2F%2Fevil.example%2F');
    unlike($screen->{body}, qr{name="return"}, 'the login form does not carry a refused return=');

    for my $bad ('https://x.example/', '//x', 'relative', '/a\\\\b') {
        (my $c = $http) =~ s{certgate_home /app/home;}{certgate_home "$bad";};
        my $path = $t->write_conf($c);
        my ($rc, $out) = $t->nginx_t($path);
        isnt($rc, 0, "certgate_home \"$bad\" fails nginx -t");
        like($out, qr/certgate_home.*not a path of this site.*nginx\.conf:\d+/s, 'naming the file and line');
    }
    $t->write_conf($http);
};

subtest 'the frame on certgate pages, per role' => sub {
    unlike($t->get('/certgate/')->{body}, qr/cg-frame/, 'no session: no frame');
    my $jar = session_of('general1');
    my $p = page('/certgate/', 'general1', $jar);
    like($p->{body}, qr{<nav class="cg-frame"}, 'a session: the frame');
    like($p->{body}, qr{class="cg-frame-user">general1<}, 'the user ID');
    like($p->{body}, qr{class="cg-frame-org">ORG001<}, 'the organisation');
    like($p->{body}, qr{<form class="cg-frame-logout" method="post" action="/certgate/logout"><input type="hidden" name="csrf_token" value="[\w-]{24}"><button type="submit">ログアウト</button>},
        'ログアウト: a POST with the CSRF token');
    unlike($p->{body}, qr{href="/certgate/admin/users"}, 'a general user: no 一般ユーザー管理');
    like($p->{body}, qr{href="/app/home">業務画面へ}, 'back to the application (certgate_home)');
    $p = page('/certgate/issue?lang=en', 'general1', $jar);
    like($p->{body}, qr{<button type="submit">Log out</button>}, 'on ④ too, in English');

    my $mjar = session_of('master01');
    $p = page('/certgate/', 'master01', $mjar);
    like($p->{body}, qr{<a href="/certgate/admin/users">一般ユーザー管理</a>}, 'a master: 一般ユーザー管理');
    $p = page('/certgate/admin/users', 'master01', $mjar);
    like($p->{body}, qr{class="cg-frame-user">master01<}, 'the admin page has the frame');
};

subtest 'the variables for the upstream, and a logout from the application' => sub {
    my $jar = session_of('general2');
    my $token = Certgate::Test::json_of($t->get('/certgate/', json => 1, cookies => $jar))->{csrf_token};
    my $a = page('/app/page', 'general2', $jar);
    is($a->{status}, 200, 'the application answers');
    like($a->{body}, qr{user=general2 logout=/certgate/logout csrf=\Q$token\E admin=\n},
        '$certgate_logout_url, $certgate_csrf_token (this browser\'s), no $certgate_admin_url');
    my $mjar = session_of('master01');
    like(page('/app/page', 'master01', $mjar)->{body}, qr{admin=/certgate/admin/users\n},
        'a master: $certgate_admin_url');

    # The application's own logout form: the token it was given passes.
    my $r = $t->request('/certgate/logout', method => 'POST', cookies => $jar,
        cert => $cert{general2}{name}, body => { csrf_token => $token });
    is($r->{status}, 303, 'the logout form posts');
    like($r->{headers}{location}, qr{^(?:https://[^/]+)?/certgate/\?logged_out=1$}, 'to the login screen');
    my $screen = page('/certgate/?logged_out=1', 'general2', $jar);
    like($screen->{body}, qr{role="status">ログアウトしました。}, 'which says so');
    unlike($screen->{body}, qr/cg-frame/, 'without a frame');
    is($t->get('/app/page', json => 1, cert => $cert{general2}{name}, cookies => $jar)->{status},
        401, 'the session is over');
    ok((grep { $_->{kind} eq 'session.logout' && $_->{subject} eq 'general2' } $t->audit),
        'a session.logout event in the store feed');
};

subtest 'admin pages without a session go to the login screen and back' => sub {
    my $r = $t->get('/certgate/admin/users');
    is($r->{status}, 302, 'a redirect');
    like($r->{headers}{location}, qr{^(?:https://[^/]+)?/certgate/\?return=%2Fcertgate%2Fadmin%2Fusers$}, 'with return=');
    $r = $t->login('master01', $pw, cert => $cert{master01}{name}, return => '/certgate/admin/users');
    is($r->{json}{next}, '/certgate/admin/users', 'login goes back there');
};

my $mjar = session_of('master01');
sub row_of {
    my ($user, $path) = @_;
    my $body = page($path || '/certgate/admin/users', 'master01', $mjar)->{body};
    my ($row) = $body =~ m{(<tr>\s*<th scope="row" class="cg-user-id"[^>]*>\Q$user\E</th>.*?</tr>)}s;
    return $row // '';
}
sub admin_post {
    my ($path, $fields, %o) = @_;
    my $token = Certgate::Test::json_of($t->get('/certgate/', json => 1, cookies => $mjar))->{csrf_token};
    my $r = $t->request("/certgate/admin/users/$path", method => 'POST', cookies => $mjar, json => $o{json},
        cert => $cert{master01}{name}, body => { csrf_token => $token, %{$fields || {}} });
    $r->{json} = Certgate::Test::json_of($r);
    return $r;
}

subtest 'the admin table: certificate and state columns' => sub {
    my $row = row_of('general1');
    like($row, qr{<span class="cg-cert-state">有効</span>.*\Q$cert{general1}{serial}\E}s,
        'a live certificate: 有効, with its serial');
    like($row, qr{<span class="cg-serial">}, 'the serial in its own wrapping span');
    like(row_of('nocert01'), qr{<span class="cg-cert-state">未発行</span>}, 'none: 未発行');
    $t->sql("UPDATE certificates SET not_after = strftime('%s','now') + 10*86400 WHERE serial = '$cert{general4}{serial}'");
    like(row_of('general4'), qr{<span class="cg-cert-state">更新可能</span>}, 'inside the renewal window: 更新可能');
    $t->sql("UPDATE certificates SET not_after = strftime('%s','now') - 86400 WHERE serial = '$cert{general4}{serial}'");
    like(row_of('general4'), qr{<span class="cg-cert-state">期限切れ</span>}, 'past its end: 期限切れ');

    $t->login('general3', 'Wr0ng!pw', cert => $cert{general3}{name}) for 1 .. 6;
    $row = row_of('general3');
    like($row, qr{ロック中<span class="cg-sub">ロック解除日時： \d{4}年}, 'locked: ロック中 with the time it lifts');
    like($row, qr{/general3/unlock}, 'and an unlock button');
    $t->certgatectl('user', 'block', 'general3');
    $row = row_of('general3');
    like($row, qr{閉塞}, 'blocked: 閉塞');
    unlike($row, qr{ロック解除日時}, 'without a lock time (a block does not lift by itself)');
    my $j = Certgate::Test::json_of($t->get('/certgate/admin/users', json => 1, cookies => $mjar,
        cert => $cert{master01}{name}));
    my %u = map { $_->{user_id} => $_ } @{$j->{users} || []};
    is($u{general1}{certificate_state}, 'valid', 'JSON: certificate_state valid');
    is($u{nocert01}{certificate_state}, 'none', 'JSON: none');
    is($u{general3}{locked_until}, 0, 'JSON: a blocked user has no lock time');
    like(row_of('general3', '/certgate/admin/users?lang=en'), qr{Blocked}, 'in English: Blocked');
    # ?lang= sticks (cookie and the master's row): back to Japanese for the rest.
    like(row_of('general3'), qr{Blocked}, 'English stays on the next page');
    like(row_of('general3', '/certgate/admin/users?lang=ja'), qr{閉塞}, 'and ?lang=ja brings Japanese back');
};

subtest 'unlock ends with a result message' => sub {
    my $r = admin_post('general3/unlock');
    is($r->{status}, 303, 'unlock: 303');
    like($r->{headers}{location}, qr{^(?:https://[^/]+)?/certgate/admin/users\?done=unlock&user=general3$}, 'to the list with the result');
    like(page($r->{headers}{location}, 'master01', $mjar)->{body},
        qr{role="status">ユーザーID general3 のロック・閉塞を解除しました。}, 'the list says so');
    unlike(page('/certgate/admin/users?done=unlock&user=other99', 'master01', $mjar)->{body},
        qr/を解除しました/, 'a result names only a user of this organisation');
};

subtest 'パスワード初期化 asks first' => sub {
    my $r = admin_post('general1/reset');
    is($r->{status}, 200, 'the button: a confirmation page');
    like($r->{body}, qr{<h1>パスワード初期化の確認</h1>}, 'titled so');
    like($r->{body}, qr{<input type="hidden" name="confirm" value="yes">}, 'its form confirms');
    like($r->{body}, qr{href="/certgate/admin/users">キャンセル</a>}, 'キャンセル goes back');
    is(user_state('general1'), 'active', 'nothing is reset yet');
    $r = admin_post('general1/reset', { confirm => 'yes' });
    is($r->{status}, 200, 'confirmed');
    like($r->{body}, qr{<dd class="cg-secret">[^<]{12,}</dd>}, 'the new initial password is shown');
    is(user_state('general1'), 'must_register', 'the user must register again');
};

subtest '利用停止 asks first, then says so, and the certificate shows 失効' => sub {
    my $r = admin_post('general2/disable');
    is($r->{status}, 200, 'the button: a confirmation page');
    like($r->{body}, qr{<h1>利用停止の確認</h1>}, 'titled so');
    like($r->{body}, qr{電子証明書は失効し}, 'saying the certificate will be revoked');
    is(user_state('general2'), 'active', 'nothing is disabled yet');
    $r = admin_post('general2/disable', { confirm => 'yes' });
    is($r->{status}, 303, 'confirmed: 303');
    like(page($r->{headers}{location}, 'master01', $mjar)->{body},
        qr{role="status">ユーザーID general2 を利用停止にしました。}, 'the result');
    my $row = row_of('general2');
    like($row, qr{利用停止}, 'the state: 利用停止');
    like($row, qr{<span class="cg-cert-state">失効</span>.*\Q$cert{general2}{serial}\E}s, 'the certificate: 失効, not 未発行');
    unlike($row, qr{<form}, 'no more buttons');
    $r = admin_post('general3/disable', {}, json => 1);
    ok($r->{json}{ok}, 'a JSON client disables at once');
    like($r->{json}{message} // '', qr/general3 を利用停止にしました/, 'with the message');
    is(user_state('general3'), 'disabled', 'disabled');
};

# nginx -t of the broken certgate_home lines logs to the same error log.
$t->done(allow => qr/certgate_home .* is not a path of this site/);
done_testing;
