/* sluice-deadletter: the dead-letter sink (deadletter.h) on the shared loop (worker_main.h). */
#include "deadletter.h"
#include "worker_main.h"

int main(int argc, char **argv)
{
    return worker_main(argc, argv, &deadletter_stage);
}
