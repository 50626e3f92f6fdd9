# Issuance part 1 (issue 4): screen ④ with the R8/R9 rules, the lockout of
# R10 shared by all attempts (race-free), the same answer for an unknown user
# as for a wrong password, R2's already-issued refusal, and the mailed code
# of screen ⑤ over real SMTP.
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $conf = <<'EOF';
    %%CERTGATE%%
    certgate_lockout 6 3s 3;
    certgate_code 6 %%CODE_LIFETIME%% 5;
    # R2 as the manual has it; R20's PC change (on by default) is t/self_revoke.t.
    certgate_self_revoke off;
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
    }
EOF
sub start_with_code_lifetime {
    my ($lifetime) = @_;
    (my $c = $conf) =~ s/%%CODE_LIFETIME%%/$lifetime/;
    $t->stop_nginx;
    $t->write_conf($c);
    $t->start_nginx;
}
start_with_code_lifetime('30m');

$t->add_org('ORG001');
my $pw = 'Passw0rd!';
$t->add_user('ORG001', $_, $pw) for qw(ruleuser1 lockme01 blockme01 codeuser1 timing01 mcdown01 smtpdown1);

sub auth { my ($user, $password, %o) = @_; return $t->submit('/certgate/issue', { user_id => $user, password => $password }, %o) }

subtest 'R8: user IDs' => sub {
    my %cases = ('abc12' => 0, 'abcd12' => 1, 'abcdef123456' => 1, 'abcdef1234567' => 0,
                 'abcdefgh' => 0, '12345678' => 0, 'abc_123' => 0, 'abc 123' => 0);
    for my $id (sort keys %cases) {
        my $r = auth($id, $pw);
        if ($cases{$id}) {
            is($r->{json}{error}, 'bad_credentials', "'$id' passes R8 (then: unknown user)");
        } else {
            is($r->{json}{error}, 'invalid_user_id', "'$id' breaks R8");
            is($r->{status}, 400, "'$id': 400");
        }
    }
    my $r = auth('abc12', $pw);
    like($r->{json}{message}, qr/文字数が足りません/, 'the message says what is wrong');
    $r = auth('abcdefgh', $pw);
    like($r->{json}{message}, qr/数字が含まれていません/, 'a missing digit is named');
};

subtest 'R9: passwords' => sub {
    my %cases = ('Pa0!xyz' => 0, 'Pa0!xyzw' => 1, 'Pa0!xyzw1234' => 1, 'Pa0!xyzw12345' => 0,
                 'pa0!xyzw' => 0, 'PA0!XYZW' => 0, 'Pab!xyzw' => 0, 'Pa0xyzw1' => 0);
    for my $p (sort keys %cases) {
        my $r = auth('ruleuser1', $p);
        if ($cases{$p}) {
            is($r->{json}{error}, 'bad_credentials', "'$p' passes R9 (then: wrong password)");
        } else {
            is($r->{json}{error}, 'invalid_password', "'$p' breaks R9");
        }
    }
};

subtest 'the sixth wrong password locks; the lock lifts by itself' => sub {
    for my $n (1 .. 5) {
        my $r = auth('lockme01', 'Wrong0!pw');
        is($r->{json}{error}, 'bad_credentials', "wrong password $n: bad_credentials");
    }
    my $r = auth('lockme01', 'Wrong0!pw');
    is($r->{json}{error}, 'locked', 'the 6th locks');
    is($r->{status}, 423, 'locked: 423');
    $r = auth('lockme01', $pw);
    is($r->{json}{error}, 'locked', 'the right password during the lock is refused');
    sleep 3.2;
    $r = auth('lockme01', $pw);
    ok($r->{json}{ok}, 'after the lock time the right password passes') or diag explain $r->{json};
    is($r->{json}{next}, '/certgate/issue/code', 'and goes on to ⑤');
};

subtest 'released by the bank, the user starts a new streak' => sub {
    $t->add_user('ORG001', 'release01', $pw);
    my $r;
    $r = auth('release01', 'Wrong0!pw') for 1 .. 6;
    is($r->{json}{error}, 'locked', 'six wrong passwords lock');
    my ($rc, $out) = $t->certgatectl('user', 'unlock', 'release01');
    is($rc, 0, 'certgatectl user unlock') or diag $out;
    $r = auth('release01', $pw);
    ok($r->{json}{ok}, 'the right password passes at once') or diag explain $r->{json};
    $r = auth('release01', 'Wrong0!pw') for 1 .. 5;
    is($r->{json}{error}, 'bad_credentials', 'five wrong ones after a success do not lock');
};

subtest 'the third lock blocks' => sub {
    for my $lock (1 .. 3) {
        my $last;
        $last = auth('blockme01', 'Wrong0!pw') for 1 .. 6;
        is($last->{json}{error}, $lock < 3 ? 'locked' : 'blocked', "lock $lock");
        sleep 3.2 if $lock < 3;
    }
    my $r = auth('blockme01', $pw);
    is($r->{json}{error}, 'blocked', 'a blocked user cannot authenticate');
    is($r->{status}, 403, 'blocked: 403');
};

subtest 'lock and block mails, one each' => sub {
    # Queued to the outbox by the locking request (issue 13), sent by the sweep.
    $t->wait_mails_to(qr/^lockme01\@/, 1);
    my @mails = $t->wait_mails_to(qr/^blockme01\@/, 3);
    @mails = $t->decoded_mails;
    my @lock = grep { $_->{to} =~ /^lockme01\@/ && $_->{subject} =~ /ロック/ } @mails;
    is(scalar @lock, 1, 'one lock mail for lockme01') or diag explain [map { "$_->{to} $_->{subject}" } @mails];
    my @b_lock = grep { $_->{to} =~ /blockme01/ && $_->{subject} =~ /ロック/ } @mails;
    my @b_block = grep { $_->{to} =~ /blockme01/ && $_->{subject} =~ /閉塞/ } @mails;
    is(scalar @b_lock, 2, 'blockme01: a mail for each of the first two locks');
    is(scalar @b_block, 1, 'blockme01: one block mail');
    like($b_block[0]{body} // '', qr/マスターユーザー/, 'the block mail says who unblocks') if @b_block;
};

my $code_jar;
sub code_from_mail {
    my ($user) = @_;
    for (1 .. 50) {
        my @m = grep { $_->{to} =~ /\Q$user\E/ && $_->{subject} =~ /認証コード/ } $t->decoded_mails;
        if (@m) { my ($code) = $m[-1]{body} =~ /認証コード：(\d{6})/; return $code }
        sleep 0.1;
    }
    return undef;
}

subtest 'the code arrives by SMTP and is good once' => sub {
    my $jar = $t->jar;
    my $r = auth('codeuser1', $pw, jar => $jar);
    ok($r->{json}{ok}, '④ passes');
    like(join(' ', @{$r->{header_list}{'set-cookie'} || []}),
        qr/__Host-certgate_flow=[^;]+; Path=\/; Secure; HttpOnly; SameSite=Strict/, 'flow cookie: Secure, HttpOnly, SameSite=Strict');
    my $code = code_from_mail('codeuser1');
    like($code // '', qr/^\d{6}$/, 'a 6-digit code arrived in the Maildir');
    my $wrong = $code eq '000000' ? '111111' : '000000';
    $r = $t->submit('/certgate/issue/code', { code => $wrong }, jar => $jar);
    is($r->{json}{error}, 'bad_code', 'a wrong code: bad_code');
    $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    ok($r->{json}{ok}, 'the right code passes');
    is($r->{json}{next}, '/certgate/issue/confirm', 'on to ⑥');
    $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    ok(!$r->{json}{ok}, 'a second use is refused');
    is($r->{json}{error}, 'bad_code', 'with bad_code');
    my $other = $t->jar;
    my $g = $t->get('/certgate/issue/code', json => 1, cookies => $other);
    is(Certgate::Test::json_of($g)->{error}, 'flow_expired', 'another browser has no flow');
};

subtest 'five wrong codes are refused; the sixth ends the flow' => sub {
    my $jar = $t->jar;
    my $r = auth('codeuser1', $pw, jar => $jar);
    ok($r->{json}{ok}, '④ passes');
    my $code = code_from_mail('codeuser1');
    my $wrong = $code eq '123456' ? '654321' : '123456';
    for my $n (1 .. 5) {
        $r = $t->submit('/certgate/issue/code', { code => $wrong }, jar => $jar);
        is($r->{json}{error}, 'bad_code', "wrong code $n: bad_code");
    }
    $r = $t->submit('/certgate/issue/code', { code => $wrong }, jar => $jar);
    is($r->{json}{error}, 'bad_code', 'the 6th wrong code: bad_code');
    like($r->{json}{message}, qr/最初からやり直して/, 'and the flow has ended');
    $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    is($r->{json}{error}, 'flow_expired', 'even the right code no longer works');
};

subtest 'R2: a valid certificate far from expiry is already issued' => sub {
    my $now = time;
    for my $case ([31, 'already_issued'], [30, undef], [-1, undef]) {
        my ($days, $expect) = @$case;
        my $user = 'renew' . ($days < 0 ? 'exp' : $days) . 'd1';
        $t->add_user('ORG001', $user, $pw);
        my $name = $t->client_cert($user, days => 400);
        my $not_after = $now + $days * 86400 - 600;
        my $serial = `openssl x509 -noout -serial -in @{[$t->dir]}/$name.crt`;
        $serial =~ s/^serial=//; chomp $serial;
        my ($rc, $out) = $t->certgatectl('cert', 'import', $t->dir . "/$name.crt", '--user', $user);
        is($rc, 0, "$user: certificate recorded") or diag $out;
        $t->sql("UPDATE certificates SET not_after = $not_after WHERE serial = '$serial'");
        my $r = auth($user, $pw);
        if ($expect) {
            is($r->{json}{error}, $expect, "$days days before expiry: $expect") or diag explain $r->{json};
            is($r->{status}, 409, 'status 409');
            like($r->{json}{message}, qr/から更新できます/, 'says from when renewal opens');
        } else {
            ok($r->{json}{ok}, ($days < 0 ? 'after expiry' : "$days days before expiry") . ': authentication goes on')
                or diag explain $r->{json};
        }
    }
    # revoked: authentication goes on
    $t->add_user('ORG001', 'revoked01', $pw);
    my $name = $t->client_cert('revoked01', days => 400);
    $t->certgatectl('cert', 'import', $t->dir . "/$name.crt", '--user', 'revoked01');
    my ($rc, $out) = $t->certgatectl('cert', 'revoke', '--user', 'revoked01', '--reason', 'keyCompromise');
    is($rc, 0, 'revoked') or diag $out;
    my $r = auth('revoked01', $pw);
    ok($r->{json}{ok}, 'after revocation: authentication goes on') or diag explain $r->{json};
};

subtest 'an unknown user gets the answer of a wrong password, in the same time' => sub {
    my $u = auth('nosuchuser1', 'Wrong0!pw');
    my $w = auth('timing01', 'Wrong0!pw');
    is($u->{status}, $w->{status}, "same status ($u->{status})");
    is_deeply([sort keys %{$u->{json}}], [sort keys %{$w->{json}}], 'same body shape');
    is($u->{json}{error}, $w->{json}{error}, 'same error code');
    is($u->{json}{message}, $w->{json}{message}, 'same message');
    # Timings: 50 of each, interleaved; the wrong-password user is reset
    # between rounds so the lock never ends its streak early.
    my (@unknown, @wrong, @ratio);
    my $jar = $t->jar;
    my $token = Certgate::Test::json_of($t->get('/certgate/issue', json => 1, cookies => $jar))->{csrf_token};
    for my $i (1 .. 50) {
        for my $which ([\@unknown, "nosuch$i"], [\@wrong, 'timing01']) {
            my $r = $t->request('/certgate/issue', method => 'POST', json => 1, cookies => $jar,
                body => { csrf_token => $token, user_id => $which->[1], password => 'Wrong0!pw' });
            push @{$which->[0]}, $r->{time} if $r->{status} == 401;
        }
        push @ratio, $unknown[-1] / $wrong[-1] if @unknown == @wrong && @wrong;
        # a success resets the streak, so 50 wrong tries never lock
        auth('timing01', $pw) if $i % 4 == 0;
    }
    my $median = sub { my @s = sort { $a <=> $b } @_; $s[@s / 2] };
    my ($mu, $mw) = ($median->(@unknown), $median->(@wrong));
    cmp_ok(scalar @unknown, '>=', 45, 'unknown user: enough samples');
    cmp_ok(scalar @wrong, '>=', 45, 'wrong password: enough samples');
    # Each unknown-user try is timed next to a wrong-password try, so load
    # on the machine hits both alike; the median of the pair ratios decides.
    my $ratio = $median->(@ratio);
    cmp_ok(abs($ratio - 1), '<', 0.2, sprintf('times within 20%% (median pair ratio %.2f; medians: unknown %.1f ms, wrong %.1f ms)', $ratio, $mu * 1000, $mw * 1000));
};

subtest 'memcached down mid-flow: unavailable, never a pass; recovers' => sub {
    my $jar = $t->jar;
    my $r = auth('mcdown01', $pw, jar => $jar);
    ok($r->{json}{ok}, '④ passes');
    my $code = code_from_mail('mcdown01');
    $t->stop_memcached;
    $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    is($r->{json}{error}, 'unavailable', '⑤ with memcached down: unavailable');
    is($r->{status}, 503, 'status 503');
    $r = auth('mcdown01', $pw);
    is($r->{json}{error}, 'unavailable', '④ with memcached down: unavailable');
    $r = auth('mcdown01', 'Wrong0!pw');
    is($r->{json}{error}, 'unavailable', 'a wrong password is not counted as free either');
    $t->start_memcached;
    $r = auth('mcdown01', $pw);
    ok($r->{json}{ok}, 'memcached back: ④ passes without a reload');
};

subtest 'SMTP down: "could not send"; recovers' => sub {
    $t->stop_smtp;
    my $r = auth('smtpdown1', $pw);
    is($r->{json}{error}, 'mail_not_sent', 'the code could not be sent');
    is($r->{status}, 503, 'status 503');
    my $html = auth('smtpdown1', $pw, html => 1);
    like($html->{body}, qr/認証コードのメールを送信できませんでした/, 'the page says so');
    like($t->error_log, qr/auth code mail not sent/, 'the error log says why');
    my @failed = grep { $_->{kind} eq 'mail.failed' } $t->audit;
    ok(scalar @failed, 'the event trail records it');
    $t->start_smtp;
    $r = auth('smtpdown1', $pw);
    ok($r->{json}{ok}, 'SMTP back: ④ passes and the code is sent, without a reload');
};

subtest 'an expired code is refused' => sub {
    start_with_code_lifetime('2s');
    my $jar = $t->jar;
    my $r = auth('codeuser1', $pw, jar => $jar);
    ok($r->{json}{ok}, '④ passes') or diag explain $r;
    my $code = code_from_mail('codeuser1');
    sleep 3.2;    # times are whole seconds: 3.2 s is past a 2 s lifetime whenever it began
    $r = $t->submit('/certgate/issue/code', { code => $code }, jar => $jar);
    is($r->{json}{error}, 'code_expired', 'code_expired');
    is($r->{status}, 410, 'status 410');
};

subtest 'screens ④ and ⑤ as a clerk sees them' => sub {
    my $r = $t->get('/certgate/issue');
    like($r->{body}, qr{<h1>電子証明書発行 ユーザー認証</h1>}, 'title of ④');
    like($r->{body}, qr{<li class="cg-current" aria-current="step"><span class="cg-step-mark">④</span>ユーザー認証</li>}, 'the step bar marks ④');
    like($r->{body}, qr{>キャンセル</button>}, 'キャンセル');
    like($r->{body}, qr{>ソフトウェアキーボード</button>}, 'ソフトウェアキーボード');
    like($r->{body}, qr{>認証</button>}, '認証');
    like($r->{body}, qr{半角英、数字の2種必須}, 'the R8 rule next to the field');
    like($r->{body}, qr{4種必須}, 'the R9 rule next to the field');
    like($r->{body}, qr{name="csrf_token" value="[\w-]{24}"}, 'a CSRF token in the form');
    my $post = $t->request('/certgate/issue', method => 'POST', json => 1,
        body => { user_id => 'codeuser1', password => $pw, csrf_token => 'forged' });
    is(Certgate::Test::json_of($post)->{error}, 'csrf', 'a POST without the right token: csrf');
};

$t->done;
done_testing;
