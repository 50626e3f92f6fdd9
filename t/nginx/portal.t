# certgate as a site tests it with Test::Nginx: one block per behaviour, the
# nginx.conf of the block beside the request and the answer it must give.
# Test::Nginx runs nginx with master_process off and error_log debug; a
# block fails if the error log holds [alert] or [emerg] (no_error_log).
use Test::Nginx::Socket 'no_plan';
use Test::Nginx::Certgate users => [
    [ORG001 => 'master01', 'Passw0rd!', master => 1],
    [ORG001 => 'general1', 'Passw0rd!'],
];

no_long_string();
run_tests();

__DATA__

=== TEST 1: the login screen has the four buttons of R13
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
    }
--- request
GET /anon/certgate/
--- response_body_like chomp
ログイン.*マスターユーザーの初期登録.*一般ユーザーの初期登録.*電子証明書発行



=== TEST 2: health answers JSON
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
    }
--- request
GET /anon/certgate/health
--- response_headers
Content-Type: application/json
--- response_body_like chomp
^\{"status":"ok"



=== TEST 3: a script gets the CSRF token as JSON
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
    }
--- request
GET /anon/certgate/
--- more_headers
Accept: application/json
--- response_body_like chomp
^\{"ok":true,"csrf_token":"[\w-]+"\}



=== TEST 4: a protected location sends a browser without a certificate to the login screen
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
        location /app/ { certgate_require; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/; }
    }
--- config
    location /backend/ { return 200 "business app\n"; }
--- request
GET /anon/app/
--- error_code: 302
--- response_headers_like
Location: .*/certgate/\?error=no_certificate$
--- response_body_unlike
business app



=== TEST 5: a script without a certificate gets 401 no_certificate
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
        location /app/ { certgate_require; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/; }
    }
--- config
    location /backend/ { return 200 "business app\n"; }
--- request
GET /anon/app/
--- more_headers
Accept: application/json
--- error_code: 401
--- response_body_like chomp
"ok":false,"error":"no_certificate"



=== TEST 6: a certificate of another CA never gets past nginx's TLS check
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
        location /app/ { certgate_require; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/; }
    }
--- config
    location /backend/ { return 200 "business app\n"; }
--- request
GET /foreign/app/
--- error_code: 400
--- response_body_like chomp
The SSL certificate error



=== TEST 7: our certificate without a session: login_required
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
        location /app/ { certgate_require; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/; }
    }
--- config
    location /backend/ { return 200 "business app\n"; }
--- request
GET /as/general1/app/
--- more_headers
Accept: application/json
--- error_code: 401
--- response_body_like chomp
"error":"login_required"



=== TEST 8: a logged-in user reaches the application, which learns who it is
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
        location /app/ {
            certgate_require;
            proxy_set_header X-Certgate-User $certgate_user;
            proxy_set_header X-Certgate-Role $certgate_role;
            proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/;
        }
    }
--- config
    location /backend/ { return 200 "business app for $http_x_certgate_user ($http_x_certgate_role)\n"; }
--- request
GET /session/general1/app/
--- response_body
business app for general1 (general)



=== TEST 9: try_files to a named location does not get around the gate
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
        location /app/ { certgate_require; try_files $uri @app; }
        location @app { proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT; }
    }
--- config
    location /app/ { return 200 "business app\n"; }
--- request
GET /anon/app/x
--- more_headers
Accept: application/json
--- error_code: 401
--- response_body_unlike
business app



=== TEST 10: role=master refuses a general user's session with 403
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
        location /admin/ { certgate_require role=master; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/; }
    }
--- config
    location /backend/ { return 200 "admin pages\n"; }
--- request
GET /session/general1/admin/
--- more_headers
Accept: application/json
--- error_code: 403
--- response_body_like chomp
"error":"forbidden"



=== TEST 11: role=master lets the master in
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
        location /admin/ { certgate_require role=master; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend/; }
    }
--- config
    location /backend/ { return 200 "admin pages\n"; }
--- request
GET /session/master01/admin/
--- response_body
admin pages



=== TEST 12: a wrong password at login is bad_credentials
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
    }
--- request eval
"POST /as/general1/certgate/login
user_id=general1&password=Wrong0pass!&csrf_token=$ENV{TEST_NGINX_CERTGATE_CSRF}"
--- more_headers
Accept: application/json
Content-Type: application/x-www-form-urlencoded
--- error_code: 401
--- response_body_like chomp
"ok":false,"error":"bad_credentials"



=== TEST 13: a form without its CSRF token is refused
--- http_config
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
    }
--- request
POST /as/general1/certgate/login
user_id=general1&password=Passw0rd!
--- more_headers
Accept: application/json
Content-Type: application/x-www-form-urlencoded
--- error_code: 403
--- response_body_like chomp
"error":"csrf"



=== TEST 14: nginx.conf errors name the directive's file and line
--- http_config
    certgate_lockout 6 sixty 3;
    server {
        $TEST_NGINX_CERTGATE_TLS
        location /certgate/ { certgate_portal; }
    }
--- request
GET /anon/certgate/
--- must_die
--- error_log eval
qr/\[emerg\].*"sixty".* in \S+nginx\.conf:\d+/
