/* Compiled once per public header, which is force-included: it must stand alone. */
int main(void)
{
	return 0;
}
