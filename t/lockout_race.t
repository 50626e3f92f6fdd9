# R10 under a flood: 1000 wrong passwords sent in parallel for one user end
# with at most six password checks, one lock and one lock mail, because each
# attempt takes its failure slot in memcached before the hash is checked.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use Certgate::Test;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
$t->write_conf(<<'EOF', workers => 2);
    %%CERTGATE%%
    certgate_lockout 6 60m 3;
    server {
%%TLS%%
        location /certgate/ { certgate_portal; }
    }
EOF
$t->start_nginx;
$t->add_org('ORG001');
my $pw = 'Passw0rd!';
$t->add_user('ORG001', 'race0001', $pw);

subtest '1000 parallel wrong passwords: at most 6 checks, one lock, one mail' => sub {
    my $jar = $t->jar;
    my $get = $t->get('/certgate/issue', json => 1, cookies => $jar);
    my $token = Certgate::Test::json_of($get)->{csrf_token};
    my $port = $t->port('https');
    my $d = $t->dir;
    my $cmd = "seq 1000 | xargs -P 40 -I{} curl -s -o /dev/null -w '%{http_code}\\n' --cacert $d/ca.crt "
        . "-b $jar -H 'Accept: application/json' --data-urlencode 'user_id=race0001' "
        . "--data-urlencode 'password=Wrong0!pw' --data-urlencode 'csrf_token=$token' "
        . "https://127.0.0.1:$port/certgate/issue";
    my @codes = split /\n/, `$cmd`;
    is(scalar @codes, 1000, "1000 answers");
    is(scalar(grep { $_ eq '200' || $_ eq '500' || $_ eq '000' } @codes), 0, 'none passed, none failed badly');
    my @checks = grep { $_->{kind} eq 'auth.failed' && $_->{subject} eq 'race0001' } $t->audit;
    cmp_ok(scalar @checks, '<=', 6, sprintf('%d password checks in the event trail', scalar @checks));
    my @locks = grep { $_->{kind} eq 'user.locked' && $_->{subject} eq 'race0001' } $t->audit;
    is(scalar @locks, 1, 'locked exactly once');
    my @mails = grep { $_->{to} =~ /race0001/ } $t->wait_mails(1);
    sleep 1;
    @mails = grep { $_->{to} =~ /race0001/ } $t->decoded_mails;
    is(scalar @mails, 1, 'exactly one lock mail');
};

subtest 'the locked user is refused, even with the right password' => sub {
    my $r = $t->submit('/certgate/issue', { user_id => 'race0001', password => $pw });
    is($r->{json}{error}, 'locked', 'locked');
};

$t->done;
done_testing;
