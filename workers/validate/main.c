/* sluice-validate: the validate stage (validate.h) on the shared loop (worker_main.h). */
#include "validate.h"
#include "worker_main.h"

int main(int argc, char **argv)
{
    return worker_main(argc, argv, &validate_stage);
}
