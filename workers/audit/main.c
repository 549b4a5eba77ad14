/* sluice-audit: the audit sink (audit.h) on the shared loop (worker_main.h). */
#include "audit.h"
#include "worker_main.h"

int main(int argc, char **argv)
{
    return worker_main(argc, argv, &audit_stage);
}
