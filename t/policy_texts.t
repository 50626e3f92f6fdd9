# The pages and mails state the configured rules, not the defaults: with
# other certgate_userid_rule / certgate_password_rule / certgate_renew_before /
# certgate_lockout / certgate_code values, every number a clerk reads follows
# nginx.conf, maxlength follows the rule, full-width input gets its own
# message, and a password that is too long is refused as such and never
# counted as a wrong one.
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Certgate::Test;

binmode(Test::More->builder->$_, ':encoding(UTF-8)') for qw(output failure_output todo_output);

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $conf = $t->write_conf(<<'EOF');
    %%CERTGATE%%
    certgate_lockout 4 2m 2;
    certgate_code 8 45m 3;
    certgate_renew_before 45d;
    certgate_userid_rule '^[A-Za-z0-9]{5,10}\z' '[A-Za-z]' min=5 max=10
                         "description=5～10文字の半角英数字で入力します（英字を1文字以上）。"
                         "description_en=5 to 10 ASCII letters and digits, one letter at least.";
    certgate_password_rule '^[\x21-\x7e]{10,16}\z' '[A-Z]' '[a-z]' '[0-9]';
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
    }
EOF
$t->start_nginx;

$t->add_org('ORG001');
# 11 characters: inside R9 (certgatectl without -c checks R9) and the rule here.
my $pw = 'Passw0rd!x1';
$t->add_user('ORG001', $_, $pw) for qw(codeuser1 streak01 lockme01);

sub auth { my ($user, $password, %o) = @_; return $t->submit('/certgate/issue', { user_id => $user, password => $password }, %o) }
sub streak { my ($user) = @_; my $s = $t->sql("SELECT failure_streak FROM users WHERE id = '$user'"); chomp $s; return $s }
sub maxlengths { my ($body, $id) = @_; return [$body =~ /id="\Q$id\E"[^>]*maxlength="(\d+)"/g] }

my $defaults = qr/6～12|8～12|30日前|60分|6回|有効期限30分|maxlength="12"|maxlength="13"/;

subtest 'the login screen: maxlength follows the rules' => sub {
    my $r = $t->get('/certgate/');
    is($r->{status}, 200, 'login screen');
    is_deeply(maxlengths($r->{body}, 'user_id'), [11], 'user ID: maxlength = max + 1');
    is_deeply(maxlengths($r->{body}, 'password'), [17], 'password: maxlength = max + 1');
    unlike($r->{body}, $defaults, 'no default number');
};

subtest '④ states the configured rules (ja)' => sub {
    my $r = $t->get('/certgate/issue');
    is($r->{status}, 200, '④');
    like($r->{body}, qr/5～10文字の半角英数字で入力します（英字を1文字以上）。/, "the user-ID rule's own description");
    like($r->{body}, qr/10～16文字で入力します。/, 'the password rule, from its length');
    like($r->{body}, qr/パスワードを連続して4回間違えた場合は、2分間ログイン不可（ロック）になります。ロックを2回繰り返した/,
        'the lockout note: 4 failures, 2 minutes, 2 locks');
    like($r->{body}, qr/有効期限が切れる45日前より認証可能/, 'renewal opens 45 days before expiry');
    is_deeply(maxlengths($r->{body}, 'user_id'), [11], 'user ID maxlength');
    is_deeply(maxlengths($r->{body}, 'password'), [17], 'password maxlength');
    unlike($r->{body}, $defaults, 'no default number');
};

subtest '④ in English' => sub {
    my $r = $t->get('/certgate/issue?lang=en');
    like($r->{body}, qr/5 to 10 ASCII letters and digits, one letter at least\./, 'the English description');
    like($r->{body}, qr/10 to 16 characters/, 'the password length');
    like($r->{body}, qr/4 wrong passwords in a row lock the user for 2 minutes\. 2 locks block the user\./,
        'the lockout note');
    like($r->{body}, qr/until 45 days before it expires/, 'renewal');
    unlike($r->{body}, qr/6 to 12|8 to 12|60 minutes|30 days/, 'no default number');
};

subtest 'the registration screens: every password field' => sub {
    my $r = $t->get('/certgate/register/master');
    is($r->{status}, 200, 'マスターユーザーの初期登録');
    is_deeply(maxlengths($r->{body}, $_), [17], "$_ maxlength") for qw(password new_password new_password_confirm);
    is_deeply(maxlengths($r->{body}, 'user_id'), [11], 'user ID maxlength');
    like($r->{body}, qr/10～16文字で入力します。/, 'the new password rule');
    unlike($r->{body}, $defaults, 'no default number');
};

subtest '⑤ and the code mail: 8 digits, 45 minutes' => sub {
    my $jar = $t->jar;
    my $r = auth('codeuser1', $pw, jar => $jar);
    ok($r->{json}{ok}, '④ passes') or diag explain $r->{json};
    my $page = $t->get('/certgate/issue/code', cookies => $jar);
    like($page->{body}, qr/半角数字8桁で入力します。（数字のみ、有効期限45分）/, '⑤ says 8 digits and 45 minutes');
    like($page->{body}, qr/id="code"[^>]*maxlength="8"/, 'the code field takes 8 digits');
    unlike($page->{body}, $defaults, 'no default number');
    my ($mail) = $t->wait_mails_to(qr/^codeuser1\@/, 1);
    ok($mail, 'the code mail arrived') or return;
    like($mail->{body}, qr/認証コード：\d{8}\b/, 'an 8-digit code');
    like($mail->{body}, qr/このメールの送信から45分です/, 'valid for 45 minutes');
    unlike($mail->{body}, qr/30分/, 'not the default lifetime');
};

subtest 'full-width input gets its own message' => sub {
    my $r = auth('ｔａｎａｋａ０１', $pw);
    is($r->{json}{error}, 'invalid_user_id', 'a full-width user ID: invalid_user_id');
    like($r->{json}{message}, qr/全角文字は使用できません。半角で入力してください。/, 'the full-width message');
    unlike($r->{json}{message}, qr/多すぎ/, 'not "too long": 8 characters, counted as characters');
    $r = auth('codeuser1', 'Ｐａｓｓｗ０ｒｄ！ｘ１');
    is($r->{json}{error}, 'invalid_password', 'a full-width password: invalid_password');
    like($r->{json}{message}, qr/全角文字は使用できません/, 'the full-width message');
    $r = auth('abcd', $pw);
    like($r->{json}{message}, qr/文字数が足りません/, 'a short user ID is named');
    $r = auth('abcdef123456', $pw);
    like($r->{json}{message}, qr/文字数が多すぎます。ユーザーIDは10文字以内で入力してください（入力された文字数：12文字）。/,
        'an 11+ character user ID is too long by the configured max');
};

subtest 'a password that is too long is refused and never counted' => sub {
    my $long = 'Passw0rd!x1234567';    # 17 characters: max 16 + 1, as maxlength lets through
    my $r;
    $r = auth('streak01', 'Wrong0!pass') for 1 .. 3;
    is($r->{json}{error}, 'bad_credentials', 'three wrong passwords');
    is(streak('streak01'), 3, 'streak 3');
    $r = auth('streak01', $long);
    is($r->{json}{error}, 'invalid_password', 'the 17-character password: invalid_password');
    like($r->{json}{message}, qr/文字数が多すぎます。パスワードは16文字以内で入力してください（入力された文字数：17文字）。/,
        'its own "too long" message');
    $r = $t->submit('/certgate/login', { user_id => 'streak01', password => $long });
    is($r->{json}{error}, 'invalid_password', 'at ログイン too');
    is(streak('streak01'), 3, 'the streak is unchanged');
    $r = auth('streak01', $pw);
    ok($r->{json}{ok}, 'the right password still works') or diag explain $r->{json};
    is(streak('streak01'), 0, 'and resets the streak');
};

subtest 'the lock comes at exactly the configured 4, too-long tries in between' => sub {
    my $r;
    for my $n (1 .. 3) {
        $r = auth('lockme01', 'Wrong0!pass');
        is($r->{json}{error}, 'bad_credentials', "wrong password $n");
        $r = auth('lockme01', 'Passw0rd!x1234567');
        is($r->{json}{error}, 'invalid_password', "too long after $n: not counted");
    }
    $r = auth('lockme01', 'Wrong0!pass');
    is($r->{json}{error}, 'locked', 'the 4th wrong password locks');
    my ($mail) = grep { $_->{subject} =~ /ロック/ } $t->wait_mails_to(qr/^lockme01\@/, 1);
    ok($mail, 'the lock mail arrived') or return;
    like($mail->{body}, qr/パスワードを連続して4回間違えた/, 'the lock mail says 4');
    unlike($mail->{body}, qr/6回/, 'not the default');
};

subtest 'certgatectl -c nginx.conf: the configured user-ID rule, counted in characters' => sub {
    my ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', '-c', $conf,
        '--store', 'sqlite:' . $t->dir . '/certgate.db', 'user', 'add-general', 'ORG001', 'ｔａｎａｋａ０１',
        '--mail', 'tanaka@example.test');
    isnt($rc, 0, 'a full-width user ID is refused');
    like($out, qr/full-width/, 'named as full-width') or diag $out;
    ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', '-c', $conf,
        '--store', 'sqlite:' . $t->dir . '/certgate.db', 'user', 'add-general', 'ORG001', 'abcdef123456',
        '--mail', 'long@example.test');
    isnt($rc, 0, 'a 12-character user ID is refused by max=10');
    like($out, qr/breaks certgate_userid_rule: too long \(12 characters; certgate_userid_rule says 5 to 10\)/,
        'named by the configured rule and its numbers') or diag $out;
    ($rc, $out) = $t->certgatectl('user', 'add-general', 'ORG001', 'ｔａｎａｋａ０１', '--mail', 'tanaka@example.test');
    isnt($rc, 0, 'and by R8 without nginx.conf');
    like($out, qr/full-width/, 'named as full-width there too') or diag $out;
};

$t->done;
done_testing;
