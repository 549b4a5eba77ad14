#include "transform.h"
#include "worker_main.h"

int main(int argc, char **argv)
{
    return worker_main(argc, argv, &transform_stage);
}
