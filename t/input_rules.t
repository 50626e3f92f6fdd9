# Input rules at every door (issues 12.7, 13.8): a user ID or password with a
# trailing newline or another control character breaks R8/R9 (default or
# configured patterns) at login, ④, the master's add-user page and
# certgatectl, always as invalid_user_id / invalid_password, never a 503; one
# mail address rule for registration, add-user, certgatectl and the mailer.
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $conf = <<'EOF';
    %%CERTGATE%%
    %%RULES%%
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
    }
EOF
sub start_with_rules {
    my ($rules) = @_;
    (my $c = $conf) =~ s/%%RULES%%/$rules/;
    $t->stop_nginx;
    $t->write_conf($c);
    $t->start_nginx;
}
start_with_rules('');

my $pw = 'Passw0rd!';
$t->add_org('ORG001');
$t->add_user('ORG001', 'master01', $pw, master => 1);
$t->add_user('ORG001', 'alice001', $pw);
my $cert = $t->issue_certificate('master01', $pw);
ok($cert->{ok}, 'the master has a certificate') or diag explain $cert;
my $jar = $t->jar;
my $r = $t->login('master01', $pw, cert => $cert->{name}, jar => $jar);
ok($r->{json}{ok}, 'the master logs in') or diag explain $r->{json};

sub admin_add {
    my ($id, $mail) = @_;
    return $t->submit('/certgate/admin/users', { user_id => $id, name => 'X', mail => $mail },
        jar => $jar, cert => $cert->{name});
}
sub ctl_add {
    my ($id, $mail, @conf) = @_;
    return $t->certgatectl(@conf, 'user', 'add-general', 'ORG001', $id, '--mail', $mail);
}

my @bad_ids = ("alice001\n", "alice001\r\n", "alice001\r", "\nalice001", "alice\x{01}01", "alice001\t");
my @bad_pws = ("$pw\n", "$pw\r\n", "Pass\x{7f}w0rd!");

sub ids_refused {
    my ($label, $msg) = @_;
    for my $id (@bad_ids) {
        (my $shown = $id) =~ s/([\x00-\x1f\x7f])/sprintf('\\x%02x', ord $1)/ge;
        my $r = $t->submit('/certgate/login', { user_id => $id, password => $pw }, cert => $cert->{name});
        is($r->{json}{error}, 'invalid_user_id', "$label login: '$shown' is invalid_user_id");
        is($r->{status}, 400, "$label login: '$shown' answers 400") ;
        like($r->{json}{message} // '', $msg, "$label login: '$shown': the rule's message");
        $r = $t->submit('/certgate/issue', { user_id => $id, password => $pw });
        is($r->{json}{error}, 'invalid_user_id', "$label ④: '$shown' is invalid_user_id");
        is($r->{status}, 400, "$label ④: '$shown' answers 400");
        $r = admin_add($id, 'new@example.test');
        is($r->{json}{error}, 'invalid_user_id', "$label add user: '$shown' is invalid_user_id");
        like($r->{json}{message} // '', $msg, "$label add user: '$shown': the rule's message");
        $r = $t->submit('/certgate/register/master', { user_id => $id, password => $pw,
            new_password => 'N3w!pass', new_password_confirm => 'N3w!pass',
            mail => 'a@example.test', mail_confirm => 'a@example.test' });
        is($r->{json}{error}, 'invalid_user_id', "$label master registration: '$shown' is invalid_user_id");
    }
    for my $p (@bad_pws) {
        (my $shown = $p) =~ s/([\x00-\x1f\x7f])/sprintf('\\x%02x', ord $1)/ge;
        my $r = $t->submit('/certgate/issue', { user_id => 'alice001', password => $p });
        is($r->{json}{error}, 'invalid_password', "$label ④: password '$shown' is invalid_password");
        $r = $t->submit('/certgate/login', { user_id => 'master01', password => $p }, cert => $cert->{name});
        is($r->{json}{error}, 'invalid_password', "$label login: password '$shown' is invalid_password");
    }
}

subtest 'R8/R9 defaults: a newline or control character is refused' => sub {
    ids_refused('default', qr/使えない文字が含まれています/);
    # certgatectl says the same.
    for my $id ("lfuser01\n", "lfuser01\r", "lf\tuser01") {
        my ($rc, $out) = ctl_add($id, 'lf@example.test');
        is($rc, 1, 'certgatectl user add-general refuses an ID with a control character');
        like($out, qr/breaks R8/, 'and says it breaks R8');
    }
    my ($rc, $out) = $t->certgatectl('--json', 'user', 'show', "lfuser01\n");
    isnt($rc, 0, 'no such user was made');
    is($t->sql("SELECT count(*) FROM users WHERE id LIKE 'lfuser01%' OR id LIKE 'alice001_%'"), "0\n",
        'the store has none of them');
};

subtest 'configured rules ending in $ still refuse a newline' => sub {
    start_with_rules(q{certgate_userid_rule "^[a-z0-9]{6,12}$";}
        . "\n    " . q{certgate_password_rule "^.{8,12}$" "[0-9]";});
    ids_refused('custom', qr/使えない文字が含まれています/);
    my $conf_file = $t->dir . '/nginx.conf';
    my ($rc, $out) = ctl_add("lfuser02\n", 'lf@example.test', '-c', $conf_file);
    is($rc, 1, 'certgatectl -c with the custom rule refuses the trailing newline');
    like($out, qr/certgate_userid_rule|control character|R8/, 'and names the rule');
    ($rc, $out) = ctl_add('lfuser02', 'lf2@example.test', '-c', $conf_file);
    is($rc, 0, 'the same ID without the newline is taken') or diag $out;
    start_with_rules('');
};

subtest 'one mail address rule at every door' => sub {
    my @bad = ('a;b@c.d', 'a b@c.d', 'a@b@c.d', '"quoted"@c.d', "a\@c.d\nBcc: x\@y.z", "a\@c.d\r",
               'a,b@c.d', '<a@c.d>', 'a@c..d', '.a@c.d', 'a.@c.d', 'a@-c.d', 'a@c_d.e', 'a@',
               '@c.d', ('x' x 65) . '@c.d', 'a@' . join('.', ('b' x 60) x 5));
    my @good = ('a.b+tag@example.test', "o'brien\@example.test", 'x_y-z@sub.example.test');
    my $n = 0;
    for my $m (@bad) {
        (my $shown = $m) =~ s/([\x00-\x1f\x7f])/sprintf('\\x%02x', ord $1)/ge;
        $n++;
        my $r = admin_add("badmail$n", $m);
        is($r->{json}{error}, 'mail_mismatch', "add user: '$shown' refused");
        like($r->{json}{message} // '', qr/メールアドレス/, "add user: '$shown': the message says why (ja)");
        my ($rc, $out) = ctl_add("ctlmail$n", $m);
        is($rc, 1, "certgatectl: '$shown' refused");
        like($out, qr/mail address .* is not a valid address: /, "certgatectl: '$shown': the message says why");
        $r = $t->submit('/certgate/register/master', { user_id => 'master01', password => $pw,
            new_password => 'N3w!pass', new_password_confirm => 'N3w!pass',
            mail => $m, mail_confirm => $m });
        is($r->{json}{error}, 'mail_mismatch', "master registration: '$shown' refused");
    }
    $n = 0;
    for my $m (@good) {
        $n++;
        my $r = admin_add("goodmail$n", $m);
        ok($r->{json}{ok}, "add user: '$m' taken") or diag explain $r->{json};
        my ($rc, $out) = ctl_add("ctlgood$n", $m);
        is($rc, 0, "certgatectl: '$m' taken") or diag $out;
    }
};

$t->done;
done_testing;
