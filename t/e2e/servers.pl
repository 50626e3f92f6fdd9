#!/usr/bin/perl
# The browser suite's servers: nginx with the built module, memcached and
# aiosmtpd writing a Maildir, set up by the prove suites' Certgate::Test.
#
# Prints one line of JSON (ports, paths, users) when everything listens,
# then waits. When its standard input closes it stops everything and prints
# a second JSON line: the error-log lines that fail every suite.
#
#   CERTGATE_BUILD=build-test t/e2e/servers.pl

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use lib abs_path(dirname(__FILE__) . '/../lib');
use JSON::PP;
use Certgate::Test;

# Certgate::Test is built for prove; this launcher runs no tests of its own.
Test::More->builder->no_ending(1);
$| = 1;

my $t = Certgate::Test->new;
$t->start_memcached;
$t->start_smtp;
$t->write_conf(<<'EOF');
    %%CERTGATE%%
    certgate_language auto;
    certgate_helpdesk "ろうきんインターネットバンキング（団体向け）ヘルプデスク" "0120-000-000" "9:00～18:00（休日を除く月曜日～金曜日）";
    certgate_home /app/;
    server {
%%TLS%%
        location = / { return 302 /certgate/; }
        location /certgate/ { certgate_portal; }
        # The business application behind certgate, as in a real
        # deployment: certgate_require runs in the access phase, and the
        # upstream learns who is logged in from the request headers.
        location /app/ {
            certgate_require;
            proxy_set_header X-Certgate-User $certgate_user;
            proxy_set_header X-Certgate-Org $certgate_org;
            proxy_set_header X-Certgate-Role $certgate_role;
            # certgate's frame in the application (docs/frame.md).
            proxy_set_header X-Certgate-Logout $certgate_logout_url;
            proxy_set_header X-Certgate-Csrf $certgate_csrf_token;
            proxy_pass http://127.0.0.1:%%HTTP_PORT%%;
        }
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location /app/ {
            default_type text/html;
            add_header Content-Security-Policy "default-src 'none'" always;
            return 200 '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Business application</title></head><body><main><h1>Business application</h1><p>Logged in as <strong id="user">$http_x_certgate_user</strong> of <span id="org">$http_x_certgate_org</span> ($http_x_certgate_role).</p><form class="cg-frame-logout" method="post" action="$http_x_certgate_logout"><input type="hidden" name="csrf_token" value="$http_x_certgate_csrf"><button type="submit">ログアウト</button></form></main></body></html>';
        }
    }
EOF
$t->start_nginx;

# The organisation, a master user waiting for the first registration (with
# the initial password of the bank's letter) and general users with
# passwords set, one for each walk that issues a certificate.
$t->add_org('E2EORG1');
my ($rc, $out) = $t->certgatectl('--json', 'user', 'add-master', 'E2EORG1', 'e2emaster1',
    '--mail', 'e2emaster1@example.test', '--name', 'Master Taro');
die "add-master: $out" if $rc;
my $master = decode_json($out);
# A general user added by the bank's tool with an initial password, for
# 一般ユーザーの初期登録.
($rc, $out) = $t->certgatectl('--json', 'user', 'add-general', 'E2EORG1', 'newuser01',
    '--mail', 'newuser01@example.test', '--name', 'General Hanako');
die "add-general: $out" if $rc;
my $general = decode_json($out);
my $password = 'Kb#2026pass';
my @users = map { $t->add_user('E2EORG1', $_, $password) }
    qw(kbduser01 walkuser01 walkuser02 lockuser01);

my $d = $t->dir;
print encode_json({
    https_port       => $t->port('https') + 0,
    origin           => 'https://127.0.0.1:' . $t->port('https'),
    dir              => $d,
    maildir          => "$d/maildir",
    ca               => "$d/ca.crt",
    store            => "sqlite:$d/certgate.db",
    certgatectl      => Certgate::Test::build_dir() . '/certgatectl',
    password         => $password,
    users            => \@users,
    master           => 'e2emaster1',
    master_initial   => $master->{initial_password},
    general          => 'newuser01',
    general_initial  => $general->{initial_password},
}), "\n";

# Until the test runner is done with us.
1 while defined(my $line = <STDIN>);

$t->stop_nginx;
$t->stop($_) for keys %{$t->{pids}};
print encode_json({ bad_log_lines => [$t->bad_log_lines] }), "\n";
