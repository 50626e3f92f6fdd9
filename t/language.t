# Issue 16 (part B), the language that sticks: ?lang=en is kept in a cookie
# (Secure, HttpOnly, SameSite=Lax) for every following page and POST answer
# of that browser, and once the user proves who it is (④, login) it becomes
# the user's own (users.language, schema 5) for its mails: the code, the
# lock, the block and the expiry notices, whichever browser made the tries.
# certgate_language stays the default of users who never chose.
use strict;
use utf8;
use warnings;
use lib 't/lib';
use Test::More;
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
my $conf = $t->write_conf(<<'EOF');
    %%CERTGATE%%
    certgate_helpdesk "Help Desk" 0120-000-000 "9:00-17:00";
    # The tries below are many for one address; the throttle is not the point.
    certgate_source_limit 1000 1h;
    server {
        %%TLS%%
        location /certgate/ { certgate_portal; }
        location /app/ { certgate_require; return 200 "app\n"; }
    }
EOF
$t->start_nginx;

$t->add_org('ORG001');
$t->add_user('ORG001', 'eng00001', 'Passw0rd!');
$t->add_user('ORG001', 'jpn00001', 'Passw0rd!');

sub user_json {
    my ($user) = @_;
    my ($rc, $out) = $t->certgatectl('--json', 'user', 'show', $user);
    die "user show: $out" if $rc;
    require JSON::PP;
    return JSON::PP::decode_json($out);
}

my $jar = $t->jar;

subtest '?lang=en sets the language cookie' => sub {
    my $r = $t->get('/certgate/?lang=en', cookies => $jar);
    is($r->{status}, 200, 'the login screen');
    like($r->{body}, qr/<html lang="en">/, 'in English');
    my ($c) = grep { /^__Host-certgate_lang=/ } @{$r->{header_list}{'set-cookie'} || []};
    ok($c, 'a language cookie is set') or return;
    like($c, qr/^__Host-certgate_lang=en;/, 'it holds en');
    like($c, qr/; Secure/, 'Secure');
    like($c, qr/; SameSite=Lax/, 'SameSite=Lax (a link from a mail keeps it)');
    like($c, qr/; Path=\//, 'Path=/');
    like($c, qr/; Max-Age=\d+/, 'kept beyond this browser session');
    $r = $t->get('/certgate/', cookies => $jar);
    ok(!grep({ /^__Host-certgate_lang=/ } @{$r->{header_list}{'set-cookie'} || []}),
        'not set again when it already says so');
};

subtest 'every following page is English, without ?lang=' => sub {
    for my $path ('/certgate/', '/certgate/issue', '/certgate/register/master',
                  '/certgate/register/password') {
        my $r = $t->get($path, cookies => $jar);
        like($r->{body}, qr/<html lang="en">/, "$path in English");
    }
    my $r = $t->get('/app/', cookies => $jar, json => 1);
    like(Certgate::Test::json_of($r)->{message} // '', qr/^No client certificate was selected/,
        'the protected path refuses in English too');
    $r = $t->get('/app/', cookies => $jar);
    is($r->{status}, 302, 'a browser goes to the login screen');
    $r = $t->get($r->{headers}{location} =~ s{^https://[^/]+}{}r, cookies => $jar);
    like($r->{body}, qr/<html lang="en">.*No client certificate was selected/s, 'which says why, in English');
    $r = $t->get('/certgate/', cookies => $t->jar);
    like($r->{body}, qr/<html lang="ja">/, 'another browser stays Japanese');
};

subtest 'a POST answer is English' => sub {
    my $r = $t->submit('/certgate/issue', { user_id => 'eng00001', password => 'Wrong0rd!' },
        jar => $jar);
    is($r->{json}{error}, 'bad_credentials', 'a wrong password');
    like($r->{json}{message}, qr/^The user ID or the password is not correct/, 'answered in English');
    $r = $t->submit('/certgate/issue', { user_id => 'eng00001', password => 'Wrong0rd!' },
        jar => $jar, html => 1);
    like($r->{body}, qr/<html lang="en">.*The user ID or the password is not correct/s,
        'the HTML answer too');
};

subtest 'passing ④ makes English the user\'s own; the code mail is English' => sub {
    is(user_json('eng00001')->{language}, '', 'no language before');
    my $i = $t->issue_certificate('eng00001', 'Passw0rd!', jar => $jar);
    ok($i->{ok}, 'issued in English') or diag explain $i;
    is(user_json('eng00001')->{language}, 'en', 'users.language = en');
    my ($code) = grep { $_->{to} =~ /^eng00001\@/ } $t->decoded_mails;
    like($code->{subject}, qr/authentication code/i, 'the code mail is English');
    my ($rc, $out) = $t->certgatectl('user', 'show', 'eng00001');
    like($out, qr/^language\s+en$/m, 'certgatectl user show says so');
    my @ev = grep { $_->{kind} eq 'user.language_set' && $_->{subject} eq 'eng00001' } $t->audit;
    is(scalar @ev, 1, 'one user.language_set event');
    like($ev[0]{detail} // '', qr/from=- to=en/, 'from nothing to en');
};

subtest 'the lock mail goes out in the user\'s language, whoever made the tries' => sub {
    # A browser that never chose (Japanese pages) types wrong passwords.
    my $other = $t->jar;
    for (1 .. 6) {
        my $r = $t->submit('/certgate/issue', { user_id => 'eng00001', password => 'Wrong0rd!' },
            jar => $other);
        like($r->{json}{message}, qr/[ぁ-んァ-ン]/, "try $_ answered in Japanese (that browser)");
    }
    my @m = $t->wait_mails_to(qr/^eng00001\@/, 2);
    my ($lock) = grep { $_->{subject} =~ /locked|ロック/ } @m;
    ok($lock, 'a lock mail') or return;
    is($lock->{subject}, '[Wage Deduction Administration System] Your user ID is locked',
        'its subject is English');
    unlike($lock->{body}, qr/[ぁ-んァ-ン]/, 'so is its body');
};

subtest 'a user who never chose gets certgate_language (ja)' => sub {
    for (1 .. 6) {
        $t->submit('/certgate/issue', { user_id => 'jpn00001', password => 'Wrong0rd!' }, jar => $jar);
    }
    my ($lock) = $t->wait_mails_to(qr/^jpn00001\@/, 1);
    like($lock->{subject}, qr/ロック/, 'Japanese lock mail');
    is(user_json('jpn00001')->{language}, '', 'still no language of its own');
};

subtest 'the expiry notice is in the user\'s language' => sub {
    my $serial = `openssl x509 -noout -serial -in @{[$t->dir]}/eng00001-issued.crt`;
    $serial =~ s/^serial=//;
    chomp $serial;
    $t->sql("UPDATE certificates SET not_after = " . (time + 10 * 86400) . " WHERE serial = '$serial'");
    my ($rc, $out) = Certgate::Test::run(Certgate::Test::build_dir() . '/certgatectl', '-c', $conf,
        'notify');
    is($rc, 0, 'notify runs') or diag $out;
    my ($notice) = grep { $_->{subject} =~ /expires soon|有効期限/ } $t->wait_mails_to(qr/^eng00001\@/, 3);
    is($notice && $notice->{subject},
        '[Wage Deduction Administration System] Your electronic certificate expires soon',
        'the notice is English');
};

subtest '?lang=ja switches back, for the pages and the user' => sub {
    my $r = $t->get('/certgate/?lang=ja', cookies => $jar);
    my ($c) = grep { /^__Host-certgate_lang=/ } @{$r->{header_list}{'set-cookie'} || []};
    like($c // '', qr/^__Host-certgate_lang=ja;/, 'the cookie now says ja');
    $r = $t->get('/certgate/issue', cookies => $jar);
    like($r->{body}, qr/<html lang="ja">/, 'Japanese pages');
    my ($rc, $out) = $t->certgatectl('user', 'unlock', 'eng00001');
    is($rc, 0, 'the bank releases the lock') or diag $out;
    $r = $t->submit('/certgate/issue', { user_id => 'eng00001', password => 'Passw0rd!' }, jar => $jar);
    is(user_json('eng00001')->{language}, 'ja', 'users.language = ja after the next ④');
};

$t->done;
done_testing;
