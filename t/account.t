# Account lifecycle (issue 7): the master user's first registration from the
# bank's letter, the general user's first registration with the initial
# password its master gave, and the master's pages for general users.
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $conf = $t->write_conf(<<'EOF');
    %%CERTGATE%%
    certgate_lockout 6 60m 3;
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
    }
EOF
$t->start_nginx;

require JSON::PP;

# A user with the bank's (or the master's) letter: its initial password.
sub letter {
    my ($org, $user, %o) = @_;
    my ($rc, $out) = $t->certgatectl('--json', 'user', $o{general} ? 'add-general' : 'add-master',
        $org, $user, '--mail', $o{mail} || "$user\@example.test");
    die "add $user: $out" if $rc;
    return JSON::PP::decode_json($out)->{initial_password};
}

sub code_for {
    my ($address) = @_;
    for (1 .. 50) {
        my @m = grep { $_->{to} =~ /\Q$address\E/ && $_->{subject} =~ /認証コード/ } $t->decoded_mails;
        if (@m) { my ($code) = $m[-1]{body} =~ /認証コード：(\d{6})/; return ($code, scalar @m) }
        sleep 0.1;
    }
    return (undef, 0);
}

sub user_json {
    my ($user) = @_;
    my ($rc, $out) = $t->certgatectl('--json', 'user', 'show', $user);
    return $rc ? {} : JSON::PP::decode_json($out);
}

my $new_pw = 'N3w!pass';
sub register_master {
    my ($user, $initial, %o) = @_;
    my %f = (user_id => $user, password => $initial, new_password => $new_pw,
             new_password_confirm => $new_pw, mail => "new-$user\@example.test",
             mail_confirm => "new-$user\@example.test");
    $f{$_} = $o{$_} for grep { exists $f{$_} } keys %o;
    return $t->submit('/certgate/register/master', \%f, jar => $o{jar}, html => $o{html});
}

sub auth { my ($user, $password, %o) = @_; return $t->submit('/certgate/issue', { user_id => $user, password => $password }, %o) }

for my $org (qw(ORG001 ORG002 ORG003 ORG004 ORG005 ORG006)) { $t->add_org($org) }

subtest 'マスターユーザー初期登録ログイン as a clerk sees it' => sub {
    my $r = $t->get('/certgate/');
    like($r->{body}, qr{action="/certgate/register/master"><button type="submit">マスターユーザーの初期登録</button>},
        'the login screen leads to it');
    $r = $t->get('/certgate/register/master');
    is($r->{status}, 200, 'status 200');
    like($r->{body}, qr{<h1>マスターユーザー初期登録ログイン</h1>}, 'its title');
    for my $label (qw(ユーザーID 初期パスワード 新しいパスワード 新しいパスワード（確認用） メールアドレス メールアドレス（確認用）)) {
        like($r->{body}, qr{<label for="\w+">\Q$label\E <span class="cg-required">}, "a label: $label");
    }
    for my $name (qw(user_id password new_password new_password_confirm)) {
        like($r->{body}, qr{<input id="$name" name="$name" type="\w+"[^>]* autocomplete="off"}, "$name: autocomplete off");
    }
    like($r->{body}, qr{name="csrf_token" value="[\w-]{24}"}, 'a CSRF token');
    like($r->{body}, qr{>登録</button>}, '登録');
    like($r->{body}, qr{>キャンセル</button>}, 'キャンセル');
    unlike($r->{body}, qr{<script>|style="}, 'no inline script or style');
    $r = $t->get('/certgate/register/master?lang=en');
    like($r->{body}, qr{<h1>Master user&apos;s first registration</h1>}, 'in English too');
    like($r->{body}, qr{<label for="password">Initial password }, 'with English labels');
};

subtest 'the new password and mail are checked before the initial password is tried' => sub {
    my $initial = letter('ORG001', 'master01');
    my $r = register_master('master01', $initial, new_password => 'short', new_password_confirm => 'short');
    is($r->{json}{error}, 'invalid_password', 'a new password breaking R9: invalid_password');
    like($r->{json}{message}, qr/文字数が足りません/, 'saying what is wrong');
    $r = register_master('master01', $initial, new_password_confirm => 'Other1!pw');
    is($r->{json}{error}, 'password_mismatch', 'confirmation differs: password_mismatch');
    is($r->{status}, 400, 'status 400');
    $r = register_master('master01', $initial, new_password => $initial, new_password_confirm => $initial);
    is($r->{json}{error}, 'invalid_password', 'the initial password as the new one: refused');
    like($r->{json}{message}, qr/初期パスワードと同じ/, 'saying why');
    $r = register_master('master01', $initial, mail_confirm => 'other@example.test');
    is($r->{json}{error}, 'mail_mismatch', 'mail typed differently: mail_mismatch');
    $r = register_master('master01', $initial, mail => 'not-an-address', mail_confirm => 'not-an-address');
    is($r->{json}{error}, 'mail_mismatch', 'not an address: refused');
    my @failed = grep { $_->{kind} eq 'auth.failed' && $_->{subject} eq 'master01' } $t->audit;
    is(scalar @failed, 0, 'none of these counted as a password attempt');
    $r = $t->request('/certgate/register/master', method => 'POST', json => 1,
        body => { user_id => 'master01', password => $initial, csrf_token => 'forged' });
    is(Certgate::Test::json_of($r)->{error}, 'csrf', 'a forged token: csrf');
    $r = register_master('master01', $initial, new_password_confirm => 'Other1!pw', html => 1);
    like($r->{body}, qr{新しいパスワードと確認用パスワードが一致しません}, 'a browser sees the refusal on the screen');
    like($r->{body}, qr{value="master01"}, 'with the user ID kept');
};

subtest 'the master registers: code to the new address, account active, on to ⑥' => sub {
    my ($rc, $out) = $t->certgatectl('--json', 'user', 'reset', 'master01');
    my $initial = JSON::PP::decode_json($out)->{initial_password};
    my $jar = $t->jar;
    my $r = register_master('master01', $initial, jar => $jar);
    ok($r->{json}{ok}, 'registration passes') or diag explain $r->{json};
    is($r->{json}{next}, '/certgate/issue/code', 'on to ⑤');
    my ($code) = code_for('new-master01@example.test');
    like($code // '', qr/^\d{6}$/, 'the code went to the new address');
    is(user_json('master01')->{state}, 'must_register', 'not active before the code');
    $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    ok($r->{json}{ok}, 'the code passes');
    is($r->{json}{next}, '/certgate/issue/confirm', 'on to ⑥');
    my $u = user_json('master01');
    is($u->{state}, 'active', 'the account is active');
    is($u->{mail}, 'new-master01@example.test', 'with the confirmed address');
    ok((grep { $_->{kind} eq 'user.registered' && $_->{subject} eq 'master01' } $t->audit),
        'the audit trail records the registration');

    $r = register_master('master01', $initial);
    is($r->{json}{error}, 'bad_credentials', 'the initial password is refused a second time');
    $r = auth('master01', $initial);
    is($r->{json}{error}, 'bad_credentials', '... and at ④');
    $r = auth('master01', $new_pw);
    ok($r->{json}{ok}, 'the new password passes ④');
    $r = register_master('master01', $new_pw, new_password => 'An0ther!pw', new_password_confirm => 'An0ther!pw');
    is($r->{json}{error}, 'forbidden', 'a registered master cannot register again');
};

subtest 'an initial password expires after 30 days' => sub {
    my $initial = letter('ORG002', 'master02');
    my $old = time - 31 * 86400;
    $t->sql("UPDATE users SET initial_password_at = $old WHERE id = 'master02'");
    my $r = register_master('master02', $initial);
    is($r->{json}{error}, 'initial_password_expired', 'initial_password_expired');
    is($r->{status}, 403, 'status 403');
    like($r->{json}{message}, qr/初期パスワードの有効期限が切れています/, 'the message says so');
};

subtest 'six wrong initial passwords lock the master (R10)' => sub {
    my $initial = letter('ORG003', 'master03');
    for my $n (1 .. 5) {
        my $r = register_master('master03', 'Wr0ng!pw');
        is($r->{json}{error}, 'bad_credentials', "wrong initial password $n");
    }
    my $r = register_master('master03', 'Wr0ng!pw');
    is($r->{json}{error}, 'locked', 'the 6th locks');
    is($r->{status}, 423, 'status 423');
    $r = register_master('master03', $initial);
    is($r->{json}{error}, 'locked', 'the right initial password during the lock is refused');
    ok(user_json('master03')->{locked_until} > time, 'the store holds the lock');
    my @lock = $t->wait_mails_to(qr/master03\@/, 1);
    is(scalar @lock, 1, 'one lock mail');
};

subtest 'a general user registers with the initial password from its master' => sub {
    my $initial = letter('ORG001', 'general01', general => 1);
    my $r = register_master('general01', $initial);
    is($r->{json}{error}, 'forbidden', 'not on the master registration');
    like($r->{json}{message}, qr/一般ユーザーの初期登録/, 'pointed to the right button');

    my $jar = $t->jar;
    $r = auth('general01', $initial, jar => $jar);
    ok($r->{json}{ok}, '④ passes with the initial password');
    is($r->{json}{next}, '/certgate/register/password', 'and asks for a new password');
    my $page = $t->get('/certgate/register/password', cookies => $jar);
    like($page->{body}, qr{<h1>一般ユーザーの初期登録 パスワード登録</h1>}, 'the new password screen');
    like($page->{body}, qr{<input id="new_password" name="new_password" type="password"[^>]* autocomplete="off"}, 'autocomplete off');
    my $pw = sub { my ($p, $c) = @_;
        $t->submit('/certgate/register/password', { new_password => $p, new_password_confirm => $c // $p }, jar => $jar) };
    $r = $pw->('N3w!pass', 'N3w!pasz');
    is($r->{json}{error}, 'password_mismatch', 'mismatch');
    $r = $pw->($initial);
    is($r->{json}{error}, 'invalid_password', 'the initial password again: refused');
    $r = $pw->('nosymbol1A');
    is($r->{json}{error}, 'invalid_password', 'R9');
    like($r->{json}{message}, qr/記号が含まれていません/, 'naming the missing class');
    $r = $pw->($new_pw);
    ok($r->{json}{ok}, 'a good new password passes');
    is($r->{json}{next}, '/certgate/issue/code', 'on to ⑤');
    my ($code) = code_for('general01@example.test');
    like($code // '', qr/^\d{6}$/, 'the code went to the registered address');
    $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    is($r->{json}{next}, '/certgate/issue/confirm', 'the code passes: on to ⑥');
    is(user_json('general01')->{state}, 'active', 'the account is active');
    $r = auth('general01', $initial);
    is($r->{json}{error}, 'bad_credentials', 'the initial password is spent');

    my $g = $t->get('/certgate/register/password', json => 1, cookies => $t->jar);
    is(Certgate::Test::json_of($g)->{error}, 'flow_expired', 'without a flow: flow_expired');
};

subtest 'SMTP down: the code waits in the outbox and goes once' => sub {
    my $initial = letter('ORG004', 'master04');
    $t->stop_smtp;
    my $jar = $t->jar;
    my $r = register_master('master04', $initial, jar => $jar);
    is($r->{json}{error}, 'mail_not_sent', 'the page says the code could not be sent yet');
    is($r->{status}, 503, 'status 503');
    $t->start_smtp;
    my $future = time + 120;  # past the outbox's first backoff
    my ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', '-c', $conf,
        '--json', 'notify', '--now', $future);
    like($out, qr/"sent":1\b/, 'certgatectl notify sends it') or diag $out;
    my ($code, $count) = code_for('new-master04@example.test');
    is($count, 1, 'one code mail');
    $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    is($r->{json}{next}, '/certgate/issue/confirm', 'the code passes');
    Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', '-c', $conf, 'notify', '--now', $future + 3600);
    sleep 0.5;
    (undef, $count) = code_for('new-master04@example.test');
    is($count, 1, 'still one: not sent twice');
};

# ⑥ in the flow of $jar, then the .p12 opened with $password: PEM copies for
# curl's cert => $name.
sub confirm_and_open {
    my ($jar, $name, $password) = @_;
    my $r = $t->submit('/certgate/issue/confirm', {}, jar => $jar);
    return undef unless $r->{json}{ok};
    my $res = $t->request($r->{json}{download}, cookies => $jar);
    return undef unless $res->{status} == 200;
    my $d = $t->dir;
    Certgate::Test::write_file("$d/$name.p12", $res->{raw_body});
    my ($rc) = Certgate::Test::run('openssl', 'pkcs12', '-in', "$d/$name.p12", '-passin',
        "pass:$password", '-nodes', '-clcerts', '-out', "$d/$name.pem");
    return undef if $rc;
    Certgate::Test::run('openssl', 'x509', '-in', "$d/$name.pem", '-out', "$d/$name.crt");
    Certgate::Test::run('openssl', 'pkey', '-in', "$d/$name.pem", '-out', "$d/$name.key");
    return $r->{json}{serial};
}

my %session;  # user → cookie jar with its login session

subtest 'the master: first registration to a working certificate and login' => sub {
    my $initial = letter('ORG005', 'master05', mail => 'old@example.test');
    my $jar = $t->jar;
    my $r = register_master('master05', $initial, jar => $jar);
    ok($r->{json}{ok}, 'registration passes') or diag explain $r->{json};
    my ($code) = code_for('new-master05@example.test');
    $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    is($r->{json}{next}, '/certgate/issue/confirm', 'on to ⑥');
    my $serial = confirm_and_open($jar, 'master05', $new_pw);
    ok($serial, 'the certificate is issued; its .p12 opens with the new password');
    my $login_jar = $t->jar;
    $r = $t->login('master05', $new_pw, cert => 'master05', jar => $login_jar);
    ok($r->{json}{ok}, 'the master logs in with it') or diag explain $r->{json};
    $session{master05} = $login_jar;
};

# The master's pages, as master05 (ORG005) with its session.
sub admin {
    my ($who, $path, $fields, %o) = @_;
    my %auth = (jar => $session{$who}, cert => $who);
    return $t->get("/certgate/$path", json => !$o{html}, cookies => $auth{jar}, cert => $who)
        unless $fields;
    return $t->submit("/certgate/$path", $fields, %auth, html => $o{html});
}
sub listed {
    my ($who) = @_;
    my $j = Certgate::Test::json_of(admin($who, 'admin/users'));
    return { map { $_->{user_id} => $_ } @{$j->{users} || []} };
}

subtest 'the master adds a general user, who registers, gets a certificate and logs in' => sub {
    my $r = admin('master05', 'admin/users', { user_id => 'abc', name => 'X', mail => 'x@example.test' });
    is($r->{json}{error}, 'invalid_user_id', 'R8 applies to the new user ID');
    $r = admin('master05', 'admin/users', { user_id => 'general05', name => '労金 花子', mail => 'general05@example.test' });
    ok($r->{json}{ok}, 'added') or diag explain $r->{json};
    my $initial = $r->{json}{initial_password};
    like($initial // '', qr/^.{12}$/, 'its initial password is given once');
    $r = admin('master05', 'admin/users', { user_id => 'general05', name => 'X', mail => 'x@example.test' });
    is($r->{json}{error}, 'invalid_user_id', 'an ID in use is refused');
    my $u = listed('master05')->{general05};
    is($u->{state}, 'must_register', 'listed as waiting for registration');
    is(user_json('general05')->{org}, 'ORG005', 'in the master\'s organisation');

    my $jar = $t->jar;
    $r = auth('general05', $initial, jar => $jar);
    is($r->{json}{next}, '/certgate/register/password', '④ with the initial password: a new password first');
    $r = $t->submit('/certgate/register/password', { new_password => $new_pw, new_password_confirm => $new_pw }, jar => $jar);
    ok($r->{json}{ok}, 'the new password is taken');
    my ($code) = code_for('general05@example.test');
    $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    is($r->{json}{next}, '/certgate/issue/confirm', 'the code passes');
    my $serial = confirm_and_open($jar, 'general05', $new_pw);
    ok($serial, 'the certificate is issued; the .p12 opens with the new password');
    my $login_jar = $t->jar;
    $r = $t->login('general05', $new_pw, cert => 'general05', jar => $login_jar);
    ok($r->{json}{ok}, 'the general user logs in') or diag explain $r->{json};
    $session{general05} = $login_jar;
    $u = listed('master05')->{general05};
    is($u->{state}, 'active', 'listed active');
    is($u->{certificate}{serial}, $serial, 'with its certificate');
    my $html = admin('master05', 'admin/users', undef, html => 1);
    like($html->{body}, qr{<h1>一般ユーザー管理</h1>}, 'the page');
    like($html->{body}, qr{general05.*労金 花子.*利用可能}s, 'the user, its name and state');
    like($html->{body}, qr{action="/certgate/admin/users/general05/reset"}, 'a reset button');
    like($html->{body}, qr{name="csrf_token" value="[\w-]{24}"}, 'forms carry the CSRF token');
};

subtest 'the master releases a lock and a block' => sub {
    my $wrong = sub { auth('general05', 'Wr0ng!pw') for 1 .. 6 };
    $wrong->();
    is(auth('general05', $new_pw)->{json}{error}, 'locked', 'six wrong passwords lock general05');
    ok(listed('master05')->{general05}{locked_until} > time, 'the list shows the lock');
    my $r = admin('master05', 'admin/users/general05/unlock', {});
    ok($r->{json}{ok}, 'the master unlocks');
    # The failure counter's key holds last_login_at in seconds: a success in
    # the same second as the last one would reuse the old streak's key.
    sleep 1.1;
    # It holds a live certificate: with R20 (certgate_self_revoke on) ④ goes on.
    ok(auth('general05', $new_pw)->{json}{ok}, 'the right password passes again');
    for my $lock (1 .. 3) {
        $wrong->();
        $t->certgatectl('user', 'unlock', 'general05') if $lock < 3;
    }
    is(user_json('general05')->{blocked}, JSON::PP::true(), 'the third lock without a success blocks');
    is(auth('general05', $new_pw)->{json}{error}, 'blocked', 'blocked');
    ok(listed('master05')->{general05}{blocked}, 'the list shows the block');
    $r = admin('master05', 'admin/users/general05/unlock', {});
    ok($r->{json}{ok}, 'the master unblocks');
    # It holds a live certificate: with R20 (certgate_self_revoke on) ④ goes on.
    ok(auth('general05', $new_pw)->{json}{ok}, 'the right password passes again');
    my @by_master = grep { $_->{actor} eq 'master05' && $_->{subject} eq 'general05' } $t->audit;
    ok((grep { $_->{kind} eq 'user.unlocked' } @by_master), 'the unlock is an event by the master');
    ok((grep { $_->{kind} eq 'user.unblocked' } @by_master), 'the unblock too');
};

subtest 'a general user gets 403 on the admin pages' => sub {
    # The block ended general05's session: it logs in again.
    $session{general05} = $t->jar;
    my $r = $t->login('general05', $new_pw, cert => 'general05', jar => $session{general05});
    ok($r->{json}{ok}, 'general05 logs in') or diag explain $r->{json};
    $r = admin('general05', 'admin/users');
    is($r->{status}, 403, 'the list: 403');
    is(Certgate::Test::json_of($r)->{error}, 'forbidden', 'forbidden');
    $r = admin('general05', 'admin/users', { user_id => 'sneaky01', mail => 's@example.test' });
    is($r->{status}, 403, 'adding: 403');
    for my $action (qw(unlock reset disable)) {
        $r = admin('general05', "admin/users/general05/$action", {});
        is($r->{status}, 403, "$action: 403");
    }
    ok(!user_json('sneaky01')->{user_id}, 'nothing added');
    is(user_json('general05')->{state}, 'active', 'nothing changed');
};

subtest 'a master of another organisation cannot list or change these users' => sub {
    $t->add_user('ORG006', 'master06', $new_pw, master => 1);
    my $name = $t->client_cert('master06', org => 'Org ORG006', days => 30);
    my ($rc, $out) = $t->certgatectl('cert', 'import', $t->dir . "/$name.crt", '--user', 'master06');
    die $out if $rc;
    $session{master06} = $t->jar;
    my $r = $t->login('master06', $new_pw, cert => 'master06', jar => $session{master06});
    ok($r->{json}{ok}, 'master06 logs in') or diag explain $r->{json};
    my $list = listed('master06');
    ok(!exists $list->{general05}, 'the list holds none of ORG005');
    for my $action (qw(unlock reset disable)) {
        $r = admin('master06', "admin/users/general05/$action", {});
        is($r->{status}, 404, "$action: 404");
        is($r->{json}{error}, 'not_found', "$action: not_found, as for an unknown ID");
    }
    $r = $t->request('/certgate/admin/users/general05/disable', method => 'POST', json => 1,
        cookies => $session{master05}, cert => 'master05', body => { csrf_token => 'forged' });
    is(Certgate::Test::json_of($r)->{error}, 'csrf', 'the owner with a forged token: csrf');
    $r = admin('master06', 'admin/users/nosuch01/reset', {});
    is($r->{json}{error}, 'not_found', 'an unknown ID answers the same');
    $r = admin('master06', 'admin/users/master05/reset', {});
    is($r->{json}{error}, 'not_found', 'another master neither');
    is(user_json('general05')->{state}, 'active', 'general05 unchanged');
};

subtest 'the master resets and disables a general user' => sub {
    my $r = admin('master05', 'admin/users/general05/reset', {}, html => 1);
    like($r->{body}, qr{name="confirm" value="yes"}, 'in a browser, reset asks first');
    $r = admin('master05', 'admin/users/general05/reset', { confirm => 'yes' }, html => 1);
    is($r->{status}, 200, 'reset in a browser');
    my ($shown) = $r->{body} =~ m{<dd class="cg-secret">([^<]+)</dd>};
    my %entity = (amp => '&', lt => '<', gt => '>', quot => '"', apos => "'");
    $shown =~ s/&(#?\w+);/$entity{$1} \/\/ "&$1;"/ge if defined $shown;
    is(length($shown // ''), 12, 'the page shows the new initial password') or diag $shown;
    $r = admin('master05', 'admin/users/general05/reset', {});
    ok($r->{json}{ok}, 'reset');
    like($r->{json}{initial_password} // '', qr/^.{12}$/, 'a new initial password, given once');
    is(user_json('general05')->{state}, 'must_register', 'the user must register again');
    is(auth('general05', $new_pw)->{json}{error}, 'bad_credentials', 'the old password is gone');
    $r = admin('master05', 'admin/users/general05/disable', {});
    ok($r->{json}{ok}, 'disabled');
    is(user_json('general05')->{state}, 'disabled', 'the user is disabled');
    my @revoked = grep { $_->{kind} eq 'cert.revoked' && $_->{actor} eq 'master05' } $t->audit;
    is(scalar @revoked, 1, 'its certificate is revoked by the master');
    like($revoked[0]{detail} // '', qr/cessationOfOperation/, 'as cessationOfOperation');
    my %kinds = map { $_->{kind} => 1 } grep { $_->{actor} eq 'master05' } $t->audit;
    ok($kinds{$_}, "$_: an event with the master as actor") for qw(user.added user.reset user.disabled);
    is(listed('master05')->{general05}{state}, 'disabled', 'the list shows it');
};

subtest 'the admin pages need a master session' => sub {
    my $r = $t->get('/certgate/admin/users', json => 1);
    is($r->{status}, 401, 'no session: 401');
    is(Certgate::Test::json_of($r)->{error}, 'forbidden', 'forbidden');
    $r = $t->get('/certgate/admin/users');
    is($r->{status}, 302, 'a browser without a session goes to the login screen');
    like($r->{headers}{location}, qr{/certgate/\?return=%2Fcertgate%2Fadmin%2Fusers$}, 'there, and back after login');
    for my $action (qw(unlock reset disable)) {
        $r = $t->submit("/certgate/admin/users/general01/$action", {});
        is($r->{status}, 401, "$action without a session: 401");
    }
    is(user_json('general01')->{state}, 'active', 'nothing changed');
};

$t->done;
done_testing;
