# Writes OUT, a C file that holds the schema b2bd carries with it:
#   - every sql/migrations/NNNN_name.sql as a string, in version order (history: applied once);
#   - every sql/functions/*.sql as a string, in the order sql/functions/ORDER lists them
#     (the live function bodies: applied whenever their text changed);
#   - the schema version, the line "version N" of sql/VERSION;
# as include/b2bd/migrations.h declares them. A function file that ORDER does not list, or
# a name ORDER lists that is not there, stops the build.
function(c_string var text)
  string(REPLACE "\\" "\\\\" text "${text}")
  string(REPLACE "\"" "\\\"" text "${text}")
  string(REPLACE "\n" "\\n\"\n    \"" text "${text}")
  set(${var} "${text}" PARENT_SCOPE)
endfunction()

file(GLOB files ${SQL_DIR}/migrations/[0-9][0-9][0-9][0-9]_*.sql)
list(SORT files)
set(body "/* Generated from sql/ by cmake/embed_sql.cmake: do not edit. */\n#include \"b2bd/migrations.h\"\n\nconst struct b2bd_migration b2bd_migrations[] = {\n")
foreach(f ${files})
  get_filename_component(name ${f} NAME_WE)
  string(SUBSTRING ${name} 0 4 version)
  math(EXPR version "${version}")
  file(READ ${f} sql)
  c_string(sql "${sql}")
  string(APPEND body "  {${version}, \"${name}\",\n    \"${sql}\"},\n")
endforeach()
string(APPEND body "};\nconst int b2bd_migrations_count = sizeof b2bd_migrations / sizeof b2bd_migrations[0];\n\n")

file(STRINGS ${SQL_DIR}/functions/ORDER order REGEX "^[^#]")
file(GLOB present RELATIVE ${SQL_DIR}/functions ${SQL_DIR}/functions/*.sql)
foreach(f ${present})
  list(FIND order ${f} at)
  if(at LESS 0)
    message(FATAL_ERROR "sql/functions/${f} is not listed in sql/functions/ORDER")
  endif()
endforeach()
string(APPEND body "const struct b2bd_sqlfile b2bd_functions[] = {\n")
foreach(f ${order})
  if(NOT EXISTS ${SQL_DIR}/functions/${f})
    message(FATAL_ERROR "sql/functions/ORDER lists ${f}, which is not there")
  endif()
  file(READ ${SQL_DIR}/functions/${f} sql)
  c_string(sql "${sql}")
  string(APPEND body "  {\"${f}\",\n    \"${sql}\"},\n")
endforeach()
string(APPEND body "};\nconst int b2bd_functions_count = sizeof b2bd_functions / sizeof b2bd_functions[0];\n\n")

file(STRINGS ${SQL_DIR}/VERSION vline REGEX "^version [0-9]+$")
if(NOT vline)
  message(FATAL_ERROR "sql/VERSION has no line \"version N\"")
endif()
string(REGEX REPLACE "^version " "" schema_version "${vline}")
string(APPEND body "const int b2bd_schema_version = ${schema_version};\n")

file(WRITE ${OUT}.tmp "${body}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
