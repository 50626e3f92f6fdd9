# Issue 16 (part B): every refusal page gives the advice that fits the user.
# A general user gets its initial password from its master user, a master
# user from the bank's letter: first registration, reset and an expired
# initial password say so by role. Locked and blocked answer unknown IDs
# too (R22), so they say both ways out, the same for every ID; a disabled
# user is told what an unknown ID is told.
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
$t->write_conf(<<'EOF');
    %%CERTGATE%%
    certgate_source_limit 1000 1h;
    server {
        %%TLS%%
        location /certgate/ { certgate_portal; }
    }
EOF
$t->start_nginx;
$t->add_org('ORG001');
$t->add_org('ORG002');

# A user with an initial password (not registered yet); returns the password.
sub initial_user {
    my ($kind, $org, $user) = @_;
    my ($rc, $out) = $t->certgatectl('--json', 'user', $kind, $org, $user, '--mail', "$user\@example.test");
    die "$kind $user: $out" if $rc;
    require JSON::PP;
    return JSON::PP::decode_json($out)->{initial_password};
}

sub reset_user {
    my ($user) = @_;
    my ($rc, $out) = $t->certgatectl('--json', 'user', 'reset', $user);
    die "reset $user: $out" if $rc;
    require JSON::PP;
    return JSON::PP::decode_json($out)->{initial_password};
}

my $master_pw = initial_user('add-master', 'ORG001', 'mast0001');
$t->add_user('ORG002', 'mast0002', 'Passw0rd!', master => 1);
my $general_pw = initial_user('add-general', 'ORG002', 'genr0001');
$t->add_user('ORG002', 'genr0002', 'Passw0rd!');
$t->client_cert($_) for qw(mast0001 genr0001 genr0002);

my $master_way = qr/［マスターユーザーの初期登録］.*労金からの書面/;
my $general_way = qr/［一般ユーザーの初期登録］.*マスターユーザーから受け取った初期パスワード/;

subtest 'general user, first registration, at login: its own way, not the bank\'s letter' => sub {
    my $r = $t->login('genr0001', $general_pw, cert => 'genr0001');
    is($r->{json}{error}, 'must_register', 'must_register');
    like($r->{json}{message}, $general_way, 'told to use 一般ユーザーの初期登録 with the master\'s password');
    unlike($r->{json}{message}, qr/マスターユーザーの初期登録|書面/, 'not the master\'s way');
};

subtest 'general user reset by the master, logging in with the new initial password' => sub {
    my $pw = reset_user('genr0002');
    my $r = $t->login('genr0002', $pw, cert => 'genr0002');
    is($r->{json}{error}, 'must_register', 'must_register');
    like($r->{json}{message}, $general_way, 'its own way');
    like($r->{json}{message}, qr/リセットされた場合は新しい初期パスワード/, 'a reset is named');
    unlike($r->{json}{message}, qr/マスターユーザーの初期登録|書面/, 'not the master\'s way');
    $r = $t->submit('/certgate/login?lang=en', { user_id => 'genr0002', password => $pw },
        cert => 'genr0002');
    like($r->{json}{message}, qr/"General user's first registration".*your master user gave you/,
        'in English too');
};

subtest 'master user, first registration and reset: the bank\'s letter' => sub {
    my $r = $t->login('mast0001', $master_pw, cert => 'mast0001');
    is($r->{json}{error}, 'must_register', 'login: must_register');
    like($r->{json}{message}, $master_way, 'told to use マスターユーザーの初期登録 with the letter');
    $r = $t->submit('/certgate/issue', { user_id => 'mast0001', password => $master_pw });
    is($r->{json}{error}, 'must_register', '④: must_register');
    like($r->{json}{message}, $master_way, 'the same advice on ④');
    my $pw = reset_user('mast0002');
    $r = $t->submit('/certgate/issue', { user_id => 'mast0002', password => $pw });
    like($r->{json}{message}, $master_way, 'a master reset by the bank: the new letter');
    like($r->{json}{message}, qr/新しい書面/, 'which the page names');
};

subtest 'an expired initial password: the master asks the bank, a general user its master' => sub {
    $t->sql("UPDATE users SET initial_password_at = initial_password_at - 31 * 86400 "
        . "WHERE id IN ('mast0001', 'genr0001')");
    my $r = $t->submit('/certgate/issue', { user_id => 'mast0001', password => $master_pw });
    is($r->{json}{error}, 'initial_password_expired', 'master: initial_password_expired');
    like($r->{json}{message}, qr/労金に初期パスワードの再発行/, 'ask the bank');
    $r = $t->submit('/certgate/issue', { user_id => 'genr0001', password => $general_pw });
    is($r->{json}{error}, 'initial_password_expired', 'general: initial_password_expired');
    like($r->{json}{message}, qr/マスターユーザーに初期パスワードの再発行/, 'ask the master user');
    $r = $t->submit('/certgate/register/master', { user_id => 'genr0001', password => $general_pw,
        new_password => 'Neww0rd!x', new_password_confirm => 'Neww0rd!x',
        mail => 'g@example.test', mail_confirm => 'g@example.test' });
    like($r->{json}{message}, qr/マスターユーザーに初期パスワードの再発行/,
        'the registration screen says the same');
    $r = $t->login('genr0001', $general_pw, cert => 'genr0001');
    like($r->{json}{message}, qr/マスターユーザーに初期パスワードの再発行/, 'so does the login screen');
};

# The message without the moment the lock lifts.
sub words { my ($m) = @_; $m =~ s/ロック解除日時：.*//; return $m }

subtest 'locked: the same words for every ID, both ways out' => sub {
    my (%msg);
    for my $id ('genr0002', 'nobody01') {
        my $r;
        $r = $t->submit('/certgate/issue', { user_id => $id, password => 'Wrong0rd!' }) for 1 .. 7;
        is($r->{json}{error}, 'locked', "$id: locked");
        $msg{$id} = $r->{json}{message};
    }
    like($msg{genr0002}, qr/自動的に解除されます.*マスターユーザーにロックの解除を依頼/,
        'it lifts by itself; a general user may ask its master');
    like($msg{genr0002}, qr/ロック解除日時：\d{4}年/, 'and when');
    is(words($msg{nobody01}), words($msg{genr0002}), 'an unknown ID reads the same (R22)');
};

subtest 'blocked: the same words for every ID' => sub {
    $t->sql("UPDATE users SET blocked = 1 WHERE id = 'genr0002'");
    $t->sql("INSERT INTO auth_streaks (user_id, blocked) VALUES ('nobody02', 1)");
    my $a = $t->submit('/certgate/issue', { user_id => 'genr0002', password => 'Passw0rd!' });
    my $b = $t->submit('/certgate/issue', { user_id => 'nobody02', password => 'Passw0rd!' });
    is($a->{json}{error}, 'blocked', 'blocked');
    like($a->{json}{message}, qr/一般ユーザーはマスターユーザーに、マスターユーザーは労金に/, 'both ways out');
    is($b->{json}{message}, $a->{json}{message}, 'an unknown ID reads the same');
};

subtest 'disabled: what an unknown ID is told' => sub {
    my ($rc, $out) = $t->certgatectl('user', 'disable', 'mast0002');
    is($rc, 0, 'disabled') or diag $out;
    my $a = $t->submit('/certgate/issue', { user_id => 'mast0002', password => 'Passw0rd!' });
    my $b = $t->submit('/certgate/issue', { user_id => 'nobody03', password => 'Passw0rd!' });
    is($a->{json}{error}, 'bad_credentials', 'bad_credentials');
    is($a->{json}{message}, $b->{json}{message}, 'the same words as an unknown ID');
};

subtest 'no certificate at login: how to get one' => sub {
    my $r = $t->login('genr0002', 'Passw0rd!');
    is($r->{json}{error}, 'no_certificate', 'no_certificate');
    like($r->{json}{message}, qr/選択してください。.*［電子証明書発行］から発行/, 'select it, or issue one');
};

$t->done;
done_testing;
