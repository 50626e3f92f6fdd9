# nginx has no CXXFLAGS: give the module's C++ objects their language
# standard and the project's warning flags as target-specific variables.

for certgate_src in $certgate_srcs; do
    certgate_obj=`basename $certgate_src .cpp`
    cat << END                                                >> $NGX_MAKEFILE

$NGX_OBJS/addon/src/$certgate_obj.$ngx_objext: CFLAGS += -std=c++17 -Wextra -Wno-missing-field-initializers ${CERTGATE_CXXFLAGS:-}
END
done
